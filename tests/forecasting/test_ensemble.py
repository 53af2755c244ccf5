"""XLSTMForecaster(ensemble=k): k networks of consecutive seeds, forecasts averaged, saved and loaded together."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xlstm_seq.forecasting import AutoXLSTMForecaster, XLSTMForecaster


def test_an_ensemble_forecasts_the_mean_of_its_seeds(frame, tiny_fit):
    df = frame(n_series=2, length=100)
    pair = XLSTMForecaster(**tiny_fit, ensemble=2, random_seed=3).fit(df, val_size=12)
    alone = [XLSTMForecaster(**tiny_fit, random_seed=s).fit(df, val_size=12).predict()["xLSTMTime"] for s in (3, 4)]
    np.testing.assert_allclose(pair.predict()["xLSTMTime"], (alone[0] + alone[1]) / 2, rtol=1e-5)
    assert len(pair.members_) == 1 and pair.steps_trained_ == 2 * tiny_fit["max_steps"]


def test_an_ensemble_survives_save_and_load(frame, tiny_fit, tmp_path):
    fc = XLSTMForecaster(**tiny_fit, ensemble=3, level=[80]).fit(frame(n_series=1, length=100))
    loaded = XLSTMForecaster.load(fc.save(tmp_path / "model"))
    assert len(loaded.members_) == 2
    pd.testing.assert_frame_equal(loaded.predict(level=[80]), fc.predict(level=[80]))


def test_auto_can_search_the_ensemble_size(frame):
    config = {"max_steps": 10, "val_check_steps": 5, "embedding_dim": 8, "num_heads": 2, "num_blocks": 1,
              "batch_size": 8, "ensemble": [1, 2]}  # fmt: skip
    auto = AutoXLSTMForecaster(h=6, input_size=24, config=config, num_samples=2, progress=False, track=False,
                               season_length=12).fit(frame(n_series=1, length=120))  # fmt: skip
    assert "ensemble" in auto.trials_.columns
    assert len(auto.model_.members_) == auto.best_config_["ensemble"] - 1
