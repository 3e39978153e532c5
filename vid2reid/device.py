"""Which torch device a command runs on: ``--device cpu|cuda|cuda:N|auto``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vid2reid.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu', 'cuda' or 'cuda:N' as asked, with a
    one-line ConfigError when CUDA is asked for but absent or the name is not a device."""
    import torch

    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not (name == "cuda" or (name.startswith("cuda:")
                                                 and name[5:].isdigit())):
        raise ConfigError(f"--device must be cpu, cuda, cuda:N or auto, got {device!r}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} was asked for but PyTorch sees no CUDA GPU; use "
                              f"--device cpu")
        if ":" in name and int(name[5:]) >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: PyTorch sees {torch.cuda.device_count()} CUDA "
                              f"GPU(s), numbered from 0")
    return torch.device(name)
