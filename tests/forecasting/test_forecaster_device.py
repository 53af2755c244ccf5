"""XLSTMForecaster's device: settings checked before any work, CPU weights on disk, loading on another device."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from xlstm_seq.forecasting import XLSTMForecaster

TINY = dict(h=6, input_size=24, patch_len=8, embedding_dim=8, num_blocks=1, num_heads=2, max_steps=4, batch_size=8,
            progress=False, track=False)  # fmt: skip
HAS_CUDA = torch.cuda.is_available()


def test_auto_fits_on_the_cpu_here_and_the_device_is_a_parameter(frame):
    if HAS_CUDA:
        pytest.skip("checks the CPU-only resolution of 'auto'")
    fc = XLSTMForecaster(**TINY).fit(frame(length=60))
    assert fc.device_ == torch.device("cpu") and fc.get_params()["device"] == "auto"
    assert all(p.device.type == "cpu" for p in fc.net_.parameters())


@pytest.mark.parametrize(("device", "message"), [("gpu0", "'gpu0' is not a device name"),
                                                 ("meta", "only CPU and CUDA devices")])  # fmt: skip
def test_bad_device_is_named_before_training(frame, device, message):
    fc = XLSTMForecaster(device=device, **TINY)
    with pytest.raises(ValueError, match=message):
        fc.fit(frame(length=60))
    assert not hasattr(fc, "net_")


@pytest.mark.skipif(HAS_CUDA, reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_named(frame):
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        XLSTMForecaster(device="cuda", **TINY).fit(frame(length=60))


@pytest.mark.skipif(HAS_CUDA, reason="checks loading a CUDA-saved model on a machine without CUDA")
def test_a_model_saved_for_cuda_loads_on_the_cpu_when_asked(tmp_path, frame):
    fc = XLSTMForecaster(device="cpu", **TINY).fit(frame(length=60))
    fc.save(tmp_path / "model")
    # As a GPU machine would have written it: the same files with device "cuda" in the parameters.
    config = tmp_path / "model" / "config.json"
    meta = json.loads(config.read_text())
    meta["params"]["device"] = "cuda"
    config.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"saved with device='cuda'.*load\(path, device='cpu'\)"):
        XLSTMForecaster.load(tmp_path / "model")
    with pytest.raises(ValueError, match="torch sees no CUDA device") as err:
        XLSTMForecaster.load(tmp_path / "model", device="cuda:0")
    assert "saved with" not in str(err.value)  # the device asked for is named, not the saved one
    loaded = XLSTMForecaster.load(tmp_path / "model", device="cpu")
    assert loaded.device == "cpu" and loaded.device_ == torch.device("cpu")
    pd.testing.assert_frame_equal(loaded.predict(), fc.predict(), check_exact=False, rtol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("backbone", ["mlstm", "slstm"])
def test_fits_and_forecasts_on_cuda_and_loads_on_the_cpu(tmp_path, frame, backbone):
    df = frame(n_series=2, length=80)
    fc = XLSTMForecaster(device="cuda", backbone=backbone, ema_decay=0.9, loss="quantile", **TINY)
    fc.fit(df, val_size=12)
    assert fc.device_.type == "cuda" and all(p.device.type == "cuda" for p in fc.net_.parameters())
    on_gpu = fc.predict(level=[80])
    fc.save(tmp_path / "model")
    on_cpu = XLSTMForecaster.load(tmp_path / "model", device="cpu").predict(level=[80])
    pd.testing.assert_frame_equal(on_cpu, on_gpu, check_exact=False, rtol=1e-4, atol=1e-4)
