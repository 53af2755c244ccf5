"""GPT-2: shapes, causality, tied weights, length check, inputs_embeds, and the 124M parameter count."""

from __future__ import annotations

import pytest
import torch

from xlstm_seq.lm.gpt2 import GPT2, GPT2Config


def tiny_config(**changes) -> GPT2Config:
    return GPT2Config(vocab_size=97, context_length=16, num_layers=2, num_heads=2, embedding_dim=32).replace(**changes)


def test_logits_shape_and_tied_head():
    torch.manual_seed(0)
    model = GPT2(tiny_config())
    idx = torch.randint(0, 97, (3, 10))
    assert model(idx).shape == (3, 10, 97)
    assert model.lm_head.weight is model.wte.weight


def test_causal_future_tokens_do_not_change_past_logits():
    torch.manual_seed(0)
    model = GPT2(tiny_config()).eval()
    idx = torch.randint(0, 97, (2, 12))
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 97
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_inputs_embeds_equals_token_path():
    torch.manual_seed(0)
    model = GPT2(tiny_config()).eval()
    idx = torch.randint(0, 97, (2, 5))
    torch.testing.assert_close(model(idx), model(inputs_embeds=model.wte(idx)))


def test_too_long_sequence_names_both_numbers():
    model = GPT2(tiny_config())
    with pytest.raises(ValueError, match=r"T = 17.*context_length = 16"):
        model(torch.zeros(1, 17, dtype=torch.int64))


def test_bad_inputs_raise():
    model = GPT2(tiny_config())
    with pytest.raises(ValueError, match="exactly one"):
        model()
    with pytest.raises(TypeError, match="int64"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="E = 32"):
        model(inputs_embeds=torch.zeros(1, 4, 31))
    with pytest.raises(ValueError, match="divisible"):
        GPT2Config(embedding_dim=30, num_heads=4)


def test_residual_projections_are_scaled():
    torch.manual_seed(0)
    config = tiny_config(num_layers=8, embedding_dim=128, num_heads=4)
    model = GPT2(config)
    proj_std = torch.cat([b.mlp.proj.weight.flatten() for b in model.blocks]).std().item()
    fc_std = torch.cat([b.mlp.fc.weight.flatten() for b in model.blocks]).std().item()
    assert abs(fc_std - 0.02) < 0.002
    assert abs(proj_std - 0.02 / 4.0) < 0.0005


def test_gpt2_small_has_124m_parameters():
    # Built on the meta device: no memory, no init cost.
    with torch.device("meta"):
        model = GPT2(GPT2Config(vocab_size=50304, context_length=1024))
    assert abs(model.num_parameters() - 124.0e6) / 124.0e6 < 0.01


def test_trains_on_a_repeating_sequence():
    torch.manual_seed(0)
    model = GPT2(tiny_config())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    idx = torch.arange(16).repeat(4, 1) % 97  # (4, 16)
    losses = []
    for _ in range(30):
        logits = model(idx[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 97), idx[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
