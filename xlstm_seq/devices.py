"""Device names as users write them ("auto", "cpu", "cuda", "cuda:1") turned into a torch.device, with an error
that says what is missing when the machine has no such device."""

from __future__ import annotations

import torch

DEVICE_NAMES = '"auto" (CUDA when torch sees a CUDA device, else the CPU), "cpu", "cuda" or "cuda:N"'


def resolve_device(name: str | torch.device, cuda_index: int | None = None) -> torch.device:
    """The torch.device for ``name``; a bare "cuda" takes ``cuda_index`` when given (a process's local rank).

    Raises:
        ValueError: a name torch does not parse, a device type other than CPU and CUDA, or a CUDA device
            this machine does not have.
    """
    if isinstance(name, torch.device):
        device = name
    else:
        resolved = ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name
        try:
            device = torch.device(resolved)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device {name!r} is not a device name; use {DEVICE_NAMES}") from err
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"device {str(device)!r}: only CPU and CUDA devices are supported; use {DEVICE_NAMES}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested but torch sees no CUDA device")
    if device.index is None and cuda_index is not None:
        device = torch.device("cuda", cuda_index)
    count = torch.cuda.device_count()
    if (device.index or 0) >= count:
        raise ValueError(f"device {str(device)!r} was requested but torch sees {count} CUDA device(s)")
    return device
