"""Training methods, one module each behind the contract in ``vid2reid.methods.base``.

Adding a method: write ``vid2reid/methods/<name>.py`` ending in ``METHOD = Method(...)`` and add
one line to ``REGISTRY``. Modules are imported only when their method is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from vid2reid.errors import ConfigError
from vid2reid.methods.base import Method

if TYPE_CHECKING:
    from vid2reid.config import TrainConfig

REGISTRY = {
    "simmc": "vid2reid.methods.simmc",
    "himpc": "vid2reid.methods.himpc",
    "sm-sge": "vid2reid.methods.smsge",
    "ms-clr": "vid2reid.methods.msclr",
}


def get_method(name: str) -> Method:
    """The training method registered as ``name``; ConfigError for an unknown name."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name]).METHOD


def validate(cfg: TrainConfig) -> None:
    """ConfigError naming the first invalid setting: the shared ones (vid2reid.config), then
    the method's name, its encoder and its own settings."""
    from vid2reid.config import check_settings

    if cfg.method not in REGISTRY:
        raise ConfigError(f"method must be one of {', '.join(REGISTRY)}, got {cfg.method!r}")
    check_settings(cfg)
    method = get_method(cfg.method)
    if cfg.encoder not in method.encoders:
        raise ConfigError(f"encoder must be one of {', '.join(method.encoders)} with --method "
                          f"{cfg.method}, got {cfg.encoder!r}")
    method.check_config(cfg)
