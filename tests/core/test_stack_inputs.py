"""The stack refuses inputs of another dtype than its parameters (naming both) unless autocast runs, and a state
from a stack of other sizes (naming the field, the shapes and this stack's sizes)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from xlstm_seq import xLSTMConfig, xLSTMStack

CONFIG = dict(embedding_dim=32, num_blocks=2, num_heads=4, slstm_at=[1], backend="torch")


@pytest.fixture
def stack() -> xLSTMStack:
    torch.manual_seed(0)
    return xLSTMStack(xLSTMConfig(**CONFIG))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_another_floating_dtype_is_refused_naming_both(stack, dtype):
    x = torch.randn(2, 5, 32)
    message = rf"has dtype {dtype} but the stack's parameters have dtype torch.float32: convert the input"
    with pytest.raises(TypeError, match=rf"^x {message}"):
        stack(x.to(dtype))
    with pytest.raises(TypeError, match=rf"^x_t {message}"):
        stack.step(x[:, 0].to(dtype))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_a_stack_of_that_dtype_runs_it(stack, dtype):
    x = torch.randn(2, 5, 32)
    y, state = stack.to(dtype)(x.to(dtype))
    assert y.dtype == dtype and torch.isfinite(y).all()
    y_t, _ = stack.step(x[:, 0].to(dtype))
    assert y_t.dtype == dtype


def test_autocast_may_mix_dtypes(stack):
    x = torch.randn(2, 5, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, state = stack(x.bfloat16())
        y_t, _ = stack.step(x[:, 0].bfloat16(), state)
    assert torch.isfinite(y.float()).all() and torch.isfinite(y_t.float()).all()


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (
            dict(embedding_dim=64),
            r"state\.blocks\[0\]\.conv has shape \(B, 3, 128\) but block 0 of this stack needs "
            r"\(B, 3, 64\), i\.e\. \(B, conv_kernel_size - 1, mLSTM width\)",
        ),
        (
            dict(num_heads=2),
            r"state\.blocks\[0\]\.C has shape \(B, 2, 32, 32\) but block 0 of this stack needs "
            r"\(B, 4, 16, 16\), i\.e\. \(B, heads, head dim, head dim\)",
        ),
        (dict(mlstm={"conv_kernel_size": 2}), r"state\.blocks\[0\]\.conv has shape \(B, 1, 64\)"),
        (
            dict(slstm={"num_heads": 2}),
            r"state\.blocks\[1\]\.c has shape \(B, 2, 16\) but block 1 of this stack "
            r"needs \(B, 4, 8\), i\.e\. \(B, heads, head dim\)",
        ),
        (dict(mlstm={"proj_factor": 1.0}), r"state\.blocks\[0\]\.conv has shape \(B, 3, 32\)"),
        (dict(num_blocks=3), r"state has 3 block states but the stack has 2 blocks"),
    ],
    ids=["width", "heads", "mlstm-conv", "slstm-heads", "proj-factor", "blocks"],
)
def test_a_state_from_a_stack_of_other_sizes_is_refused_naming_them(stack, other, message):
    state = xLSTMStack(xLSTMConfig(**{**CONFIG, **other})).init_state(2)
    x = torch.randn(2, 5, 32)
    for run in (lambda: stack(x, state), lambda: stack.step(x[:, 0], state)):
        with pytest.raises(ValueError, match=message) as caught:
            run()
        if "block states" not in message:
            assert "this one: embedding_dim=32, num_heads=4, num_blocks=2" in str(caught.value)


def test_states_of_the_same_sizes_pass_and_the_stack_still_pickles(stack):
    x = torch.randn(2, 5, 32)
    twin = xLSTMStack(xLSTMConfig(**CONFIG))
    y, state = stack(x, twin.init_state(2))
    y2, _ = stack(x, state)
    clone = pickle.loads(pickle.dumps(stack))
    torch.testing.assert_close(clone(x, state)[0], y2)
    torch.testing.assert_close(copy.deepcopy(stack)(x)[0], y)
