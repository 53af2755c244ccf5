"""tools/gpu/ray_stub: the stand-in for Ray on the lent GPU imports as neuralforecast needs, and refuses use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

STUB = Path(__file__).resolve().parents[2] / "tools" / "gpu" / "ray_stub"

PROBE = """
import ray
from ray import air, tune
from ray.tune.integration.pytorch_lightning import TuneReportCallback
from ray.tune.search.basic_variant import BasicVariantGenerator

assert ray.__file__.startswith(STUB), ray.__file__
BasicVariantGenerator(random_state=1)  # neuralforecast builds one as a default argument at import
for call in (lambda: tune.choice([1, 2]), lambda: air.RunConfig(), lambda: TuneReportCallback({}, on="x")):
    try:
        call()
    except ray.StubUsed as err:
        assert "install Ray" in str(err)
    else:
        raise AssertionError("the stub let a Ray entry point run")
print("ok")
"""


def test_ray_stub_imports_like_ray_and_refuses_every_entry_point():
    # A fresh interpreter with the stub first on the path, so that this process's modules are untouched.
    code = f"import sys; sys.path.insert(0, {str(STUB)!r}); STUB = {str(STUB)!r}\n" + PROBE
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
