"""Fixtures every test folder may use."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch


def _import_triton_in_interpreter_mode() -> None:
    """Without CUDA the Triton tests run the kernels in Triton's interpreter, which needs Triton's own library
    functions (``tl.sum``, ...) built in interpreter mode; Triton builds them once, when it is first imported, from
    ``TRITON_INTERPRET``. torch.compile's inductor imports Triton too (the compiled-path tests run before the kernel
    tests), so import it here first with the variable set, then restore the variable for every other test."""
    if torch.cuda.is_available() or importlib.util.find_spec("triton") is None:
        return
    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        import triton.language  # noqa: F401
    finally:
        if before is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = before


_import_triton_in_interpreter_mode()


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test, restored after: tiny models on a shared 2-core machine (CI's too) run far
    faster on one thread than on two contended ones. The forecasting, lm and rl folders use it for every test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mlflow_in_tmp(tmp_path, monkeypatch) -> str:
    """A temporary SQLite MLflow store as ``MLFLOW_TRACKING_URI`` and ``tmp_path`` as the working folder (so a report
    written to its default path lands there); returns the store's URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri
