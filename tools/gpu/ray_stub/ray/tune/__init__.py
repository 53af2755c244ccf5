"""``ray.tune`` of the stand-in (see ray/__init__.py): every entry point refuses to run."""

from ray import _refuse

choice = _refuse("tune.choice")
with_parameters = _refuse("tune.with_parameters")
with_resources = _refuse("tune.with_resources")
Tuner = _refuse("tune.Tuner")
TuneConfig = _refuse("tune.TuneConfig")
