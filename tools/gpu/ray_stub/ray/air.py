"""``ray.air`` of the stand-in (see ray/__init__.py): RunConfig refuses to be built."""

from ray import _refuse

RunConfig = _refuse("air.RunConfig")
