"""Evaluation: each score is checked on models whose logits the test constructs, so the answer is known."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from xlstm_seq.lm.eval_data import (
    HellaSwagItem,
    load_hellaswag,
    load_lambada,
    load_perplexity_text,
    wikitext_detokenize,
)
from xlstm_seq.lm.evaluation import (
    frequency_bucket_perplexity,
    hellaswag_scores,
    lambada_scores,
    score_continuations,
    sliding_window_perplexity,
    token_nlls,
    word_nlls,
)
from xlstm_seq.lm.tokenizer import local_bpe_files

V = 256


class ByteEncoding:
    """One token per UTF-8 byte."""

    def encode_ordinary(self, text):
        return list(text.encode("utf-8"))

    def decode_single_token_bytes(self, token):
        return bytes([token])


class BigramLM(nn.Module):
    """logits[b, t] = table[idx[b, t]]: the next-token distribution depends on the current token only."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(table)

    def forward(self, idx):
        return self.table[idx]  # (B, T, V)


class PositionLM(nn.Module):
    """Ignores the tokens: the logit of token 0 is 0.02 x the position inside the window (context length - 1)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        B, T = idx.shape
        logits = torch.zeros(B, T, 4)
        logits[:, :, 0] = 0.02 * torch.arange(T, dtype=torch.float32)
        return logits


def chain_table(chain: str, strength: float = 8.0) -> torch.Tensor:
    """Uniform next-byte logits, except that each byte of ``chain`` strongly predicts the byte after it."""
    table = torch.zeros(V, V)
    for a, b in zip(chain.encode(), chain.encode()[1:], strict=False):
        table[a, b] = strength
    return table


def bigram_logprob(table: torch.Tensor, prev: int, nxt: int) -> float:
    return float(torch.log_softmax(table[prev].double(), -1)[nxt])


def test_sliding_window_scores_every_token_once_with_exact_bigram_nll():
    torch.manual_seed(0)
    table = torch.randn(V, V)
    tokens = torch.randint(0, V, (103,))
    nll = token_nlls(BigramLM(table), tokens, window=16, stride=5, batch_size=3, bf16=False)
    expected = [-bigram_logprob(table, int(tokens[t - 1]), int(tokens[t])) for t in range(1, 103)]
    assert math.isnan(nll[0])
    np.testing.assert_allclose(nll[1:].numpy(), expected, rtol=1e-5)
    ppl = sliding_window_perplexity(BigramLM(table), tokens, window=16, stride=5, bf16=False)
    assert ppl == pytest.approx(math.exp(np.mean(expected)), rel=1e-5)


@pytest.mark.parametrize(("window", "stride", "n"), [(8, 4, 30), (8, 7, 17), (256, 128, 700), (5, 1, 12)])
def test_each_token_gets_the_context_the_protocol_promises(window, stride, n):
    nll = token_nlls(PositionLM(), torch.zeros(n, dtype=torch.int64), window=window, stride=stride, bf16=False)
    # NLL of token 0 predicted at window position j: log(1 + 3 exp(-0.02 j)) -> recover j = context length - 1.
    j = np.log(3.0 / np.expm1(nll[1:].numpy())) / 0.02
    context = np.rint(j).astype(int) + 1
    for p, ctx in zip(range(1, n), context, strict=True):
        if p < window:
            assert ctx == p  # the first window sees everything before p
        else:
            begin = stride * math.ceil((p - window + 1) / stride)
            assert ctx == p - begin and window - stride <= ctx <= window - 1


def test_lambada_last_word_accuracy_and_target_perplexity():
    table = chain_table("a bc")
    texts = ["one a bc", "two a bd"]  # the first target follows the chain greedily, the second does not
    scores = lambada_scores(BigramLM(table), ByteEncoding(), texts, bf16=False)
    assert scores["accuracy"] == 0.5 and scores["count"] == 2

    def target_logprob(context, target):
        seq = (context + target).encode()
        return sum(bigram_logprob(table, seq[i - 1], seq[i]) for i in range(len(context), len(seq)))

    expected = math.exp(-(target_logprob("one a", " bc") + target_logprob("two a", " bd")) / 2)
    assert scores["target_perplexity"] == pytest.approx(expected, rel=1e-5)


def test_stride_must_be_shorter_than_the_window():
    with pytest.raises(ValueError, match="stride < window"):
        token_nlls(PositionLM(), torch.zeros(20, dtype=torch.int64), window=8, stride=8)


def test_continuations_are_cut_from_the_left_and_kept_whole():
    table = chain_table("xyz")
    long_context = list(b"q" * 50 + b"x")
    (logprob, greedy), (short_lp, _) = score_continuations(
        BigramLM(table), [(long_context, list(b"yz")), ([ord("x")], list(b"yz"))], max_len=8, bf16=False
    )
    assert greedy and logprob == pytest.approx(short_lp, rel=1e-6)
    with pytest.raises(ValueError, match="continuation"):
        score_continuations(BigramLM(table), [([1], list(range(8)))], max_len=8)


def test_hellaswag_picks_the_likely_ending_and_normalises_by_length():
    chain = BigramLM(chain_table("ctx. the end"))
    items = [
        HellaSwagItem("ctx.", ["zzz", "the end", "qq", "w"], label=1),
        HellaSwagItem("ctx.", ["the end", "zzzzz", "qq", "w"], label=2),
    ]
    scores = hellaswag_scores(chain, ByteEncoding(), items, bf16=False)
    assert scores["acc"] == 0.5 and scores["acc_norm"] == 0.5
    # A uniform model: every byte costs log 256. Raw sums favour the shortest ending ("w", index 3);
    # per-character scores tie and the first ending wins.
    uniform = BigramLM(torch.zeros(V, V))
    item = HellaSwagItem("ctx.", ["aaaa", "bbbbbb", "cc", "w"], label=3)
    scores = hellaswag_scores(uniform, ByteEncoding(), [item], bf16=False)
    assert scores["acc"] == 1.0 and scores["acc_norm"] == 0.0


def test_words_collect_their_token_nlls_and_fall_into_frequency_buckets():
    text = "aa b aa\nc c"
    tokens = list(text.encode())
    nll = torch.tensor([float("nan")] + [float(i) for i in range(1, len(tokens))], dtype=torch.float64)
    words, values = word_nlls(ByteEncoding(), text, nll, tokens)
    assert words == ["aa", "b", "aa", "c", "c"]
    # bytes: a0 a1 _2 b3 _4 a5 a6 \n7 c8 _9 c10; token 0 is unscored, so the first "aa" is NaN.
    assert math.isnan(values[0])
    np.testing.assert_allclose(values[1:], [3.0, 11.0, 8.0, 10.0])
    buckets = frequency_bucket_perplexity(words, values, Counter({"aa": 150, "b": 5, "c": 1000, "d": 2000}))
    assert buckets["rare"] == {"perplexity": pytest.approx(math.exp(3.0)), "words": 1}
    assert buckets["medium"]["words"] == 3  # one "aa" and both "c" (1,000 is medium)
    assert buckets["medium"]["perplexity"] == pytest.approx(math.exp((11.0 + 8.0 + 10.0) / 3))
    assert buckets["frequent"]["words"] == 0 and math.isnan(buckets["frequent"]["perplexity"])


@pytest.mark.skipif(not all(p.is_file() for p in local_bpe_files()), reason="GPT-2 BPE files not in the data root")
def test_word_alignment_with_gpt2_bpe():
    from xlstm_seq.lm.tokenizer import gpt2_tokenizer

    enc = gpt2_tokenizer()
    text = "The cat sat.\n\nA dog"
    tokens = enc.encode_ordinary(text)
    words, values = word_nlls(enc, text, torch.ones(len(tokens), dtype=torch.float64), tokens)
    assert words == ["The", "cat", "sat.", "A", "dog"]
    assert values.tolist() == [1.0, 1.0, 2.0, 1.0, 1.0]  # "sat." is " sat" + "."; "\n\n" belongs to no word


def test_wikitext_detokenizer():
    raw = ' = Title = \n He had a guest @-@ starring role , in 2,000 @,@ 1 @.@ 5 " Craig " ( 2004 ) . \n'
    assert wikitext_detokenize(raw) == '= Title =\nHe had a guest-starring role, in 2,000,1.5 "Craig" (2004).\n'


def _have(relpath: str) -> bool:
    from xlstm_seq.data import data_root

    return (data_root() / relpath).is_file()


@pytest.mark.skipif(not _have("hellaswag/hellaswag_val_full.txt.xz"), reason="HellaSwag not in the data root")
def test_hellaswag_file_has_all_validation_items():
    items = load_hellaswag()
    assert len(items) == 10_042 and all(len(i.endings) == 4 for i in items)
    assert items[0].context.startswith("Roof shingle removal:") and items[0].label == 3


@pytest.mark.skipif(not _have("lambada/lambada_test.jsonl"), reason="LAMBADA not in the data root")
def test_lambada_and_perplexity_texts_load():
    assert len(load_lambada()) == 5153
    for name in ("wikitext-2", "wikitext-103", "ptb"):
        text = load_perplexity_text(name)
        assert len(text) > 400_000 and " @-@ " not in text
