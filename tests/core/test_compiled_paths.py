"""The compile switch of the core (xlstm_seq.compiled): compiled == eager, few recompiles, an eager fallback.

One small stack (an mLSTM and an sLSTM block) is compiled once for the module and shared by the tests, so that
the file's compile time stays a minute or two; inductor's on-disk cache makes a rerun faster still.
"""

from __future__ import annotations

import logging
import pickle

import pytest
import torch
from torch._dynamo.utils import counters

from xlstm_seq import compiled
from xlstm_seq.compiled import AUTO_MIN_CALLS, CompiledPath, check_compile_setting, should_compile
from xlstm_seq.config import xLSTMConfig
from xlstm_seq.stack import xLSTMStack

E = 8
TOL = dict(rtol=1e-4, atol=1e-5)


def _config(slstm_backend: str = "auto") -> xLSTMConfig:
    return xLSTMConfig(embedding_dim=E, num_blocks=2, num_heads=2, slstm_at=[1], slstm={"backend": slstm_backend})


# The sLSTM as one opaque op (auto: the C++ kernel on a CPU with a compiler) and as the torch loop stepping
# through a compiled cell.
@pytest.fixture(scope="module", params=["auto", "torch"], ids=["slstm-auto", "slstm-torch"])
def pair(request) -> tuple[xLSTMStack, xLSTMStack]:
    """(eager, compiled) stacks with the same weights."""
    torch.manual_seed(0)
    eager = xLSTMStack(_config(request.param), compile=False)
    fast = xLSTMStack(_config(request.param), compile=True)
    fast.load_state_dict(eager.state_dict())
    return eager, fast


def _recompiles() -> int:
    # Every graph dynamo builds, first compiles included.
    return counters["stats"]["unique_graphs"]


def test_forward_and_gradients_match_eager(pair):
    eager, fast = pair
    x = torch.randn(3, 5, E)
    resets = torch.zeros(3, 5, dtype=torch.bool)
    resets[1, 2] = True
    state = eager.init_state(3)
    y_e, s_e = eager(x, state, resets)
    y_c, s_c = fast(x, state, resets)
    assert fast.compiled_path("forward").is_compiled
    torch.testing.assert_close(y_c, y_e, **TOL)
    for a, b in zip(s_c.blocks, s_e.blocks, strict=True):
        for ta, tb in zip(a.tensors(), b.tensors(), strict=True):
            torch.testing.assert_close(ta, tb, **TOL)
    y_e.square().sum().backward()
    y_c.square().sum().backward()
    for (name, p_e), p_c in zip(eager.named_parameters(), fast.parameters(), strict=True):
        assert p_c.grad is not None and torch.isfinite(p_c.grad).all(), name
        torch.testing.assert_close(p_c.grad, p_e.grad, rtol=1e-3, atol=1e-5, msg=name)
    eager.zero_grad()
    fast.zero_grad()


def test_step_matches_eager_and_a_new_batch_size_reuses_the_graph(pair):
    eager, fast = pair
    with torch.no_grad():
        for B in (2, 4):
            state_e = state_c = eager.init_state(B)
            for _ in range(3):
                x_t = torch.randn(B, E)
                y_e, state_e = eager.step(x_t, state_e)
                y_c, state_c = fast.step(x_t, state_c)
                torch.testing.assert_close(y_c, y_e, **TOL)
            if B == 2:
                graphs_after_first_batch = _recompiles()
        assert fast.compiled_path("step").is_compiled
        # B = 4 runs on the graph compiled for B = 2 (the batch dimension is dynamic).
        assert _recompiles() == graphs_after_first_batch


def test_forward_with_a_new_batch_size_recompiles_once_then_never(pair):
    eager, fast = pair
    graphs = []
    for B in (3, 6, 5, 9):  # B = 3 was compiled by the first test (same inputs: a state and resets, with grad)
        resets = torch.zeros(B, 5, dtype=torch.bool)
        y_c, _ = fast(torch.randn(B, 5, E), eager.init_state(B), resets)
        graphs.append(_recompiles())
    # A new batch size is a new input once (then dynamo makes it dynamic; with the torch sLSTM backend the loop
    # runs eagerly between compiled pieces, and the pieces after it see it once each). Every later batch size
    # reuses the graphs.
    assert graphs[1] - graphs[0] <= 2
    assert graphs[3] == graphs[1]


def test_eager_setting_is_the_plain_module(pair):
    eager, _ = pair
    x = torch.randn(2, 4, E)
    path = eager.compiled_path("forward")
    y_path, _ = eager(x)
    y_plain, _ = eager._forward_blocks(x, [None, None], None)
    assert torch.equal(y_path, y_plain)
    assert not path.is_compiled and path.fallback_reason == ""


def test_compiled_stack_pickles_and_copies(pair):
    _, fast = pair
    clone = pickle.loads(pickle.dumps(fast))
    assert clone.compile_mode is True
    assert clone.compiled_path("step").calls == 0  # a copy builds its own compiled paths


def test_missing_compiler_falls_back_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setenv("CXX", "/nonexistent/g++-none")
    monkeypatch.setattr(compiled, "_LOGGED", set())
    stack = xLSTMStack(_config(), compile=True)
    reference = xLSTMStack(_config(), compile=False)
    reference.load_state_dict(stack.state_dict())
    x = torch.randn(2, 3, E)
    with caplog.at_level(logging.WARNING, logger="xlstm_seq.compiled"):
        y, _ = stack(x)
        stack(x)
        stack.step(x[:, 0].contiguous())
    assert torch.equal(y, reference(x)[0])
    lines = [r.getMessage() for r in caplog.records if r.name == "xlstm_seq.compiled"]
    assert len(lines) == 1 and "no C++ compiler found" in lines[0] and "g++-none" in lines[0]
    assert "no C++ compiler" in stack.compiled_path("forward").fallback_reason


def test_compile_failure_falls_back_with_one_log_line(monkeypatch, caplog):
    def broken_compile(fn, *args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("inductor exploded\nsecond line")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(compiled, "_LOGGED", set())
    path = CompiledPath(lambda a: a * 2, "step", setting=True)
    with caplog.at_level(logging.WARNING, logger="xlstm_seq.compiled"):
        assert torch.equal(path(torch.ones(2), device="cpu"), torch.full((2,), 2.0))
        assert torch.equal(path(torch.ones(2), device="cpu"), torch.full((2,), 2.0))
    lines = [r.getMessage() for r in caplog.records if r.name == "xlstm_seq.compiled"]
    assert len(lines) == 1 and "RuntimeError: inductor exploded" in lines[0] and "second line" not in lines[0]
    assert path.fallback_reason and not path.is_compiled


def test_an_error_of_the_caller_is_raised_not_taken_for_a_compile_failure(monkeypatch):
    def bad(a):
        raise ValueError("bad input")

    monkeypatch.setattr(torch, "compile", lambda fn, *a, **k: fn)
    path = CompiledPath(bad, "step", setting=True)
    with pytest.raises(ValueError, match="bad input"):
        path(torch.ones(1), device="cpu")
    assert path.fallback_reason == ""


def test_auto_rule():
    assert not should_compile("auto", "step", 20)
    assert should_compile("auto", "step", AUTO_MIN_CALLS["step"])
    assert not should_compile("auto", "step", AUTO_MIN_CALLS["step"], device="meta")
    assert should_compile(True, "forward", 1) and not should_compile(False, "forward", 10**9)
    path = CompiledPath(lambda a: a, "forward")
    assert not path.wants_compile("cpu")
    path.expect_calls(AUTO_MIN_CALLS["forward"])
    assert path.wants_compile("cpu")


@pytest.mark.parametrize("value", ["yes", 1, None, "AUTO"])
def test_bad_settings_are_refused(value):
    with pytest.raises(ValueError, match="compile must be True, False or 'auto'"):
        check_compile_setting(value)
    with pytest.raises(ValueError, match="compile must be"):
        xLSTMStack(_config(), compile=value)
