"""The benchmark's device: checked with the config, passed to every model, named in the markdown."""

from __future__ import annotations

import pytest
import torch

from xlstm_seq_bench.forecasting import long_horizon_report
from xlstm_seq_bench.forecasting.long_horizon import lightning_device
from xlstm_seq_bench.forecasting.long_horizon_config import LongHorizonConfig

CPU = {"cpu": "Test CPU", "cores": 2}


def test_a_bad_or_missing_device_is_named_with_the_config(monkeypatch):
    with pytest.raises(ValueError, match="'gpu0' is not a device name"):
        LongHorizonConfig(device="gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        LongHorizonConfig(device="cuda")


def test_neuralforecast_models_train_on_the_same_device():
    assert lightning_device(torch.device("cpu")) == {"accelerator": "cpu"}
    assert lightning_device(torch.device("cuda", 1)) == {"accelerator": "gpu", "devices": [1]}
    assert lightning_device(torch.device("cuda")) == {"accelerator": "gpu", "devices": [0]}


def test_the_markdown_names_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = LongHorizonConfig(num_threads=1)
    assert long_horizon_report.device_words(cpu, **CPU) == "Test CPU (2 cores visible), 1 torch thread(s), CPU only"
    # A machine with one CUDA device: only names are resolved, nothing is allocated.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    words = long_horizon_report.device_words(LongHorizonConfig(num_threads=1, device="cuda:0"), **CPU)
    assert words == "NVIDIA H200 (cuda:0), every model trained there; CPU Test CPU (2 cores visible), 1 torch thread(s)"
    assert "CPU only" not in long_horizon_report.device_words(LongHorizonConfig(num_threads=1, device="auto"), **CPU)
