"""RevIN: the window's mean or (PatchTST's option) its last value as the centre, and the round trip back."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq.forecasting.models import RevIN


@pytest.mark.parametrize("subtract_last", [False, True])
def test_normalise_centres_scales_and_denormalise_undoes_it(subtract_last):
    torch.manual_seed(0)
    y = torch.randn(3, 20, 2) * 4 + 7  # (B, L, C)
    revin = RevIN(2, subtract_last=subtract_last)
    z, centre, std = revin.normalise(y)
    expected = y[:, -1:] if subtract_last else y.mean(dim=1, keepdim=True)
    assert torch.allclose(centre, expected)
    assert torch.allclose(std, y.std(dim=1, unbiased=False, keepdim=True), atol=1e-4)
    if subtract_last:
        assert torch.allclose(z[:, -1], torch.zeros(3, 2), atol=1e-6)  # the last step sits at the centre
    else:
        assert torch.allclose(z.mean(dim=1), torch.zeros(3, 2), atol=1e-5)
    back = revin.denormalise(z.unsqueeze(-1), centre, std).squeeze(-1)  # (B, L, C) taken as a forecast
    assert torch.allclose(back, y, atol=1e-4)


def test_the_two_centres_differ_on_a_trending_window():
    y = torch.arange(10.0)[None, :, None]  # (1, 10, 1), mean 4.5, last 9
    assert RevIN(1).normalise(y)[1].item() == pytest.approx(4.5)
    assert RevIN(1, subtract_last=True).normalise(y)[1].item() == pytest.approx(9.0)


def _trend():
    ds = pd.date_range("2020-01-01", periods=80, freq="h")
    return pd.DataFrame({"unique_id": "a", "ds": ds, "y": torch.linspace(0, 8, 80).numpy()})


def test_forecaster_takes_the_option_keeps_it_through_save_and_load(tmp_path):
    kwargs = dict(h=4, input_size=16, embedding_dim=8, num_blocks=1, num_heads=2, max_steps=3, batch_size=4,
                  progress=False, track=False, random_seed=0)  # fmt: skip
    last = XLSTMForecaster(revin_subtract_last=True, **kwargs).fit(_trend())
    mean = XLSTMForecaster(**kwargs).fit(_trend())
    assert not last.predict()["xLSTMTime"].equals(mean.predict()["xLSTMTime"])
    last.save(tmp_path / "m")
    loaded = XLSTMForecaster.load(tmp_path / "m")
    assert loaded.get_params()["revin_subtract_last"] is True
    pd.testing.assert_frame_equal(loaded.predict(), last.predict())


@pytest.mark.parametrize("name", ["revin", "revin_subtract_last"])
def test_a_non_boolean_switch_is_named(name):
    # Named on construction; set_params skips the constructor, so fit names it too.
    with pytest.raises(ValueError, match=f"{name} must be True or False"):
        XLSTMForecaster(h=4, input_size=16, progress=False, track=False, **{name: "yes"})
    fc = XLSTMForecaster(h=4, input_size=16, progress=False, track=False).set_params(**{name: "yes"})
    with pytest.raises(ValueError, match=f"{name} must be True or False"):
        fc.fit(_trend())
