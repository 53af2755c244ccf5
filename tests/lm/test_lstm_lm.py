"""The LSTM LM baseline: shapes, state carried over chunks and steps, generation, tied head, training through the
Trainer (a tiny overfit), and the checkpoint round trip that `lm eval` reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xlstm_seq.lm.eval_suite import load_trained_model
from xlstm_seq.lm.evaluation import sliding_window_perplexity
from xlstm_seq.lm.lstm_lm import LSTMLM, LSTMLMConfig
from xlstm_seq.lm.models import LMModelConfig, build_model, count_parameters, flops_per_token
from xlstm_seq.lm.trainer import TrainConfig, Trainer, decay_parameter_names


def tiny_lstm(**changes) -> LSTMLM:
    return LSTMLM(LSTMLMConfig(vocab_size=61, embedding_dim=16, hidden_size=24, num_layers=2).replace(**changes))


@pytest.mark.parametrize("hidden_size", [None, 24], ids=["hidden=E", "hidden>E"])
def test_shapes_and_tied_head(hidden_size):
    model = tiny_lstm(hidden_size=hidden_size)
    idx = torch.randint(0, 61, (3, 7))
    assert model(idx).shape == (3, 7, 61)
    assert model(inputs_embeds=torch.randn(3, 7, 16)).shape == (3, 7, 61)
    assert model.lm_head.weight is model.wte.weight
    # The tied head is counted once; the embedding is the only part left out by exclude_embeddings.
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())
    assert model.num_parameters() - model.num_parameters(exclude_embeddings=True) == 61 * 16
    with pytest.raises(ValueError, match="exactly one of idx"):
        model(idx, inputs_embeds=torch.randn(3, 7, 16))


def test_untied_head_and_forget_bias():
    model = tiny_lstm(tie_weights=False, forget_bias=2.0)
    assert model.lm_head.weight is not model.wte.weight
    H = 24
    total = model.lstm.bias_ih_l1 + model.lstm.bias_hh_l1  # gates i, f, g, o
    torch.testing.assert_close(total[H : 2 * H], torch.full((H,), 2.0))


def test_chunks_and_steps_equal_full_pass():
    torch.manual_seed(0)
    model = tiny_lstm().eval()
    idx = torch.randint(0, 61, (2, 9))
    with torch.no_grad():
        full = model(idx)
        first, state = model.forward_with_state(idx[:, :4])
        second, _ = model.forward_with_state(idx[:, 4:], state)
        torch.testing.assert_close(torch.cat([first, second], dim=1), full, rtol=1e-5, atol=1e-6)
        state, stepped = model.init_state(2), []
        for t in range(9):
            logits_t, state = model.step(idx[:, t], state)
            stepped.append(logits_t)
    torch.testing.assert_close(torch.stack(stepped, dim=1), full, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="idx_t must be"):
        model.step(idx[:, :1])


def test_greedy_generation_matches_argmax_of_full_pass():
    torch.manual_seed(0)
    model = tiny_lstm().eval()
    prompt = torch.randint(0, 61, (2, 5))
    out = model.generate(prompt, max_new_tokens=4, temperature=0.0)
    assert out.shape == (2, 9) and torch.equal(out[:, :5], prompt)
    with torch.no_grad():
        expected = model(out[:, :-1]).argmax(-1)[:, 4:]
    torch.testing.assert_close(out[:, 5:], expected)


def test_model_config_builds_counts_and_round_trips():
    config = LMModelConfig(kind="lstm", lstm=LSTMLMConfig(vocab_size=61, embedding_dim=16, num_layers=1))
    model = build_model(config)
    assert isinstance(model, LSTMLM) and config.vocab_size == 61 and config.context_length is None
    assert count_parameters(config) == model.num_parameters()
    assert LMModelConfig.from_yaml(config.to_yaml()) == config
    # Every weight is one multiply-add per token, whatever the context.
    assert flops_per_token(model, 64) == flops_per_token(model, 8) == 6.0 * model.num_parameters()
    with pytest.raises(ValueError, match="dropout must be in"):
        LSTMLMConfig(dropout=1.0)
    with pytest.raises(ValueError, match="hidden_size must be"):
        LSTMLMConfig(hidden_size=0)


def test_lstm_matrices_get_weight_decay_and_biases_do_not():
    names = decay_parameter_names(tiny_lstm())
    assert {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l1", "lstm.weight_hh_l1", "proj.weight"} <= names
    assert "wte.weight" in names and not any("bias" in name for name in names)


def _counting_tokens(n: int) -> np.ndarray:
    return (np.arange(n) % 61).astype(np.uint16)


def test_trainer_overfits_a_counting_sequence_and_the_checkpoint_loads_back(tmp_path):
    torch.manual_seed(0)
    model = LMModelConfig(kind="lstm", lstm=LSTMLMConfig(vocab_size=61, embedding_dim=32, num_layers=1))
    config = TrainConfig(
        model=model, out_dir=str(tmp_path / "run"), seq_len=16, batch_size=8, max_steps=100, warmup_steps=5,
        learning_rate=2e-2, weight_decay=0.0, eval_every=0, eval_batches=2, log_every=10, device="cpu",
    )  # fmt: skip
    trainer = Trainer(config, train_shards=[_counting_tokens(4000)], val_shards=[_counting_tokens(1000)], track=False)
    summary = trainer.fit()
    trainer.close()
    # Chance is log(61) = 4.1 nats; the next number is fully determined by the current one.
    assert summary["val_loss"] < 0.5 and summary["parameters"] == trainer.raw_model.num_parameters()

    loaded, meta = load_trained_model(tmp_path / "run")
    assert isinstance(loaded, LSTMLM) and meta["step"] == 100
    tokens = torch.from_numpy(_counting_tokens(200).astype(np.int64))
    ppl = sliding_window_perplexity(loaded, tokens, window=32, stride=16, bf16=False)
    assert ppl == pytest.approx(sliding_window_perplexity(trainer.raw_model, tokens, window=32, stride=16, bf16=False))
    assert ppl < 1.7
