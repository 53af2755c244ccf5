"""XLSTMForecaster(compile=...): the switch reaches every xLSTM stack of the network; "auto" keeps a short fit eager."""

from __future__ import annotations

import pytest

from xlstm_seq.forecasting import XLSTMForecaster
from xlstm_seq.stack import xLSTMStack


def stacks(fc: XLSTMForecaster) -> list[xLSTMStack]:
    return [m for m in fc.net_.modules() if isinstance(m, xLSTMStack)]


@pytest.mark.parametrize("setting", ["auto", False])
def test_the_switch_reaches_the_stacks_and_a_short_fit_stays_eager(frame, tiny_fit, setting):
    fc = XLSTMForecaster(**tiny_fit, compile=setting).fit(frame(n_series=1, length=80))
    assert stacks(fc) and all(s.compile_mode == setting for s in stacks(fc))
    forward = [s.compiled_path("forward") for s in stacks(fc)]
    assert not any(p.is_compiled for p in forward)
    assert not any(p.wants_compile("cpu") for p in forward)  # 30 planned steps are far from repaying a compile


def test_a_bad_compile_setting_is_refused():
    with pytest.raises(ValueError, match="compile must be True, False or 'auto'"):
        XLSTMForecaster(compile="always")
