"""vid2reid: RGB walking videos -> 3D skeletons -> unsupervised skeleton re-ID."""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vid2reid.run import Run

__version__ = "0.1.0"


def load_run(path: str | PathLike | None = None, unit_features: bool | None = None,
             runs_dir: str | PathLike = "runs") -> Run:
    """A trained run ready to embed walks: ``load_run(path).embed(store_or_array)``.

    ``path``: a run folder, a folder of runs (its latest finished run) or a ``LATEST`` file;
    None: the latest run in ``runs_dir``. See vid2reid.run.Run (imported on first use: torch
    loads only then).
    """
    from vid2reid.run import open_run

    return open_run(path, runs_dir, unit_features=unit_features)
