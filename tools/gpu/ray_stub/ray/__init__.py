"""A stand-in for Ray on the lent GPU machine, where the real wheel (72 MB) does not fit the device tool's 64 MiB carry.

neuralforecast imports ``ray.air`` and ``ray.tune`` when it is imported (for its Auto* models' hyperparameter search,
which the long-horizon benchmark never uses). This package lets that import succeed and fails loudly if anything
calls into it. It is put on PYTHONPATH only by tools/gpu/device_checks.sh, never installed with xlstm-seq.
"""

__version__ = "0+stub"


class StubUsed(RuntimeError):
    """Raised when code reaches for Ray itself: install the real package for that."""


def _refuse(name: str):
    def refused(*args, **kwargs):
        raise StubUsed(f"ray.{name} was called, but this is tools/gpu/ray_stub: install Ray to use it")

    return refused


from ray import air, tune  # noqa: E402  (after _refuse, which they use)

__all__ = ["StubUsed", "air", "tune"]
