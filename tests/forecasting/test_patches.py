"""Patch layout: non-overlapping patches as before, PatchTST's overlapping patches with patch_stride."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq.forecasting.models import NetSpec, build_model, patch_layout, patchify


@pytest.mark.parametrize(
    ("L", "patch", "stride", "expected"),
    [(32, 8, None, (4, 0)), (30, 8, None, (4, 2)), (104, 24, 2, (41, 0)), (512, 16, 8, (63, 0)), (5, 8, 2, (1, 3))],
)
def test_layout_covers_the_look_back_and_ends_on_its_last_step(L, patch, stride, expected):
    n, pad = patch_layout(L, patch, stride)
    assert (n, pad) == expected
    assert (n - 1) * (stride or patch) + patch == L + pad


@pytest.mark.parametrize("stride", [0, 9])
def test_layout_names_a_stride_outside_one_to_patch_len(stride):
    with pytest.raises(ValueError, match="patch_stride"):
        patch_layout(32, 8, stride)


def test_overlapping_patches_hold_the_right_steps():
    t = torch.arange(10.0)[None, :, None, None].expand(1, 10, 1, 2).clone()  # (N=1, L=10, C=1, 2 features)
    t[..., 1] *= -1
    n, pad = patch_layout(10, 4, 2)
    patches = patchify(t, 4, 2, pad)  # (1, n, 4 * 2)
    assert patches.shape == (1, n, 8)
    # Step-major inside a patch, the same order as the non-overlapping reshape: (step0 f0, step0 f1, step1 f0 ...).
    assert patches[0, 0].tolist() == [0, 0, 1, -1, 2, -2, 3, -3]
    assert patches[0, -1, ::2].tolist() == [6, 7, 8, 9]
    same = patchify(t, 2, None, 0)
    assert torch.equal(same, patchify(t, 2, 2, 0))


@pytest.mark.parametrize("model", ["xlstm_time", "xlstm_encoder"])
def test_models_run_with_overlapping_patches(model):
    sizes = dict(input_size=30, h=6, n_channels=3, n_hist=1, n_futr=0, n_stat=0, n_outputs=1, embedding_dim=8)
    spec = NetSpec(**sizes, num_blocks=1, num_heads=2, mixing="independent", patch_len=8, patch_stride=3, moving_avg=5)
    net = build_model(model, spec)
    batch = {"y": torch.randn(2, 30, 3), "x_hist": torch.randn(2, 30, 3, 1), "x_futr": torch.zeros(2, 6, 3, 0),
             "x_stat": torch.zeros(2, 3, 0)}  # fmt: skip
    out = net(batch)
    assert out.shape == (2, 6, 3, 1) and torch.isfinite(out).all()


def _frame():
    ds = pd.date_range("2020-01-01", periods=60, freq="h")
    return pd.DataFrame({"unique_id": "a", "ds": ds, "y": torch.randn(60).numpy()})


@pytest.mark.parametrize("stride", [0, 9, 2.5])
def test_bad_stride_is_named_at_fit(stride):
    # Named on construction; set_params skips the constructor, so fit names it too.
    with pytest.raises(ValueError, match="patch_stride"):
        XLSTMForecaster(h=4, input_size=16, patch_len=8, patch_stride=stride, progress=False, track=False)
    fc = XLSTMForecaster(h=4, input_size=16, patch_len=8, progress=False, track=False).set_params(patch_stride=stride)
    with pytest.raises(ValueError, match="patch_stride"):
        fc.fit(_frame())


def test_forecaster_fits_and_predicts_with_overlapping_patches():
    df = _frame()
    fc = XLSTMForecaster(h=4, input_size=16, patch_len=8, patch_stride=4, mixing="independent", embedding_dim=8,
                         num_blocks=1, num_heads=2, max_steps=3, batch_size=4, progress=False, track=False)  # fmt: skip
    forecast = fc.fit(df).predict()
    assert len(forecast) == 4 and forecast["xLSTMTime"].notna().all()
