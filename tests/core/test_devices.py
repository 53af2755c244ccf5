"""resolve_device: the names users write, and the errors for devices a machine does not have."""

from __future__ import annotations

import pytest
import torch

from xlstm_seq.devices import resolve_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_cuda_devices(monkeypatch):
    # Only the names are resolved here; nothing is allocated, so no real device is needed.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_auto_is_the_cpu_without_cuda_and_cpu_passes_through(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_auto_and_bare_cuda_take_a_cuda_device_when_there_is_one(two_cuda_devices):
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda", cuda_index=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", cuda_index=1) == torch.device("cuda", 0)  # an explicit index wins


def test_missing_cuda_devices_are_named(no_cuda, monkeypatch):
    with pytest.raises(ValueError, match="'cuda' was requested but torch sees no CUDA device"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"'cuda:3' was requested but torch sees 2 CUDA device\(s\)"):
        resolve_device("cuda:3")


@pytest.mark.parametrize(("name", "message"), [("gpu0", "'gpu0' is not a device name"),
                                               ("meta", "only CPU and CUDA devices are supported")])  # fmt: skip
def test_bad_names_say_what_is_accepted(name, message):
    with pytest.raises(ValueError, match=message) as err:
        resolve_device(name)
    assert '"auto"' in str(err.value)
