"""``ray.tune.integration.pytorch_lightning`` of the stand-in (see ray/__init__.py)."""

from ray import _refuse

TuneReportCallback = _refuse("tune.integration.pytorch_lightning.TuneReportCallback")
