"""vid2reid: RGB walking videos -> 3D skeletons -> unsupervised skeleton re-ID."""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vid2reid.retrieval import LoadedRun

__version__ = "0.1.0"


def load_run(path: str | PathLike, unit_features: bool | None = None) -> LoadedRun:
    """A trained run ready to embed walks: ``load_run(path).embed(store_or_array)``.

    See vid2reid.retrieval.LoadedRun (imported on first use: torch loads only then).
    """
    from vid2reid.retrieval import load_run as _load_run

    return _load_run(path, unit_features=unit_features)
