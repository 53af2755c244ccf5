"""GPT-2 byte-pair encoding through tiktoken, built offline from the data root when the files are there.

    enc = gpt2_tokenizer()            # $XLSTM_SEQ_DATA/gpt2_bpe/{encoder.json, vocab.bpe}, else tiktoken's download
    enc.encode_ordinary("Hello world")   # [15496, 995]
    EOT_TOKEN                         # 50256, <|endoftext|>, the document separator

The files are checked against the SHA-256 hashes tiktoken pins for OpenAI's originals, so a local copy that
differs fails loudly instead of tokenizing differently.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import tiktoken
import tiktoken.load

from xlstm_seq.data import DATA_ENV, data_root

log = logging.getLogger(__name__)

EOT_TOKEN = 50256
"""Id of <|endoftext|> in GPT-2's vocabulary."""
GPT2_VOCAB_SIZE = 50257
"""Tokens in GPT-2's vocabulary (models pad it to 50,304)."""
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
# GPT-2's pre-tokenisation pattern (tiktoken's r50k_base / gpt2).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def local_bpe_files(root: Path | None = None) -> tuple[Path, Path]:
    """Paths of vocab.bpe and encoder.json under ``root/gpt2_bpe`` (root defaults to the data root)."""
    folder = (root or data_root()) / "gpt2_bpe"
    return folder / "vocab.bpe", folder / "encoder.json"


@functools.lru_cache(maxsize=4)
def gpt2_tokenizer(root: str | None = None) -> tiktoken.Encoding:
    """GPT-2's BPE as a tiktoken ``Encoding``.

    Args:
        root: a folder holding ``gpt2_bpe/``; None uses the data root (``$XLSTM_SEQ_DATA``).

    Returns:
        The encoding, built from the local files when present (no network), else tiktoken's own "gpt2"
        (which downloads and caches OpenAI's files when the machine is online).

    Raises:
        FileNotFoundError: the files are not local and tiktoken could not download them.
    """
    vocab_bpe, encoder_json = local_bpe_files(Path(root) if root is not None else None)
    if vocab_bpe.is_file() and encoder_json.is_file():
        ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=str(vocab_bpe),
            encoder_json_file=str(encoder_json),
            vocab_bpe_hash=VOCAB_BPE_SHA256,
            encoder_json_hash=ENCODER_JSON_SHA256,
        )
        return tiktoken.Encoding(
            name="gpt2",
            pat_str=GPT2_PATTERN,
            mergeable_ranks=ranks,
            special_tokens={"<|endoftext|>": EOT_TOKEN},
            explicit_n_vocab=GPT2_VOCAB_SIZE,
        )
    log.info("no local GPT-2 BPE files at %s; asking tiktoken for its 'gpt2' encoding", vocab_bpe.parent)
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as err:  # tiktoken raises requests/OS errors of several kinds when offline
        raise FileNotFoundError(
            f"GPT-2 BPE files not found: expected {vocab_bpe} and {encoder_json} (data root from ${DATA_ENV}), "
            f"and tiktoken could not download them ({type(err).__name__}: {err}). Copy OpenAI's gpt-2 "
            "encodings/main/{vocab.bpe,encoder.json} there."
        ) from err
