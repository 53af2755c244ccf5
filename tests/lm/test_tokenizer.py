"""GPT-2 BPE built offline from the data root."""

from __future__ import annotations

import pytest

from xlstm_seq.lm.tokenizer import EOT_TOKEN, gpt2_tokenizer, local_bpe_files

needs_bpe = pytest.mark.skipif(
    not all(p.is_file() for p in local_bpe_files()), reason="GPT-2 BPE files not in $XLSTM_SEQ_DATA/gpt2_bpe"
)


@needs_bpe
def test_hello_world():
    enc = gpt2_tokenizer()
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    assert enc.n_vocab == 50257 and enc.eot_token == EOT_TOKEN


@needs_bpe
def test_round_trip_and_end_of_text():
    enc = gpt2_tokenizer()
    text = "The xLSTM's memory: 42 cells, naïve résumé.\n\nNew paragraph."
    assert enc.decode(enc.encode_ordinary(text)) == text
    assert enc.encode("<|endoftext|>", allowed_special="all") == [EOT_TOKEN]
    # Ordinary encoding never produces the separator from text that spells it.
    assert EOT_TOKEN not in enc.encode_ordinary("<|endoftext|>")


def test_missing_files_offline_names_the_expected_path(tmp_path, monkeypatch):
    import tiktoken

    def offline(name):
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(FileNotFoundError, match="gpt2_bpe"):
        gpt2_tokenizer(str(tmp_path))
