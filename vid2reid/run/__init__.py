"""A trained run as every command after training uses it: opened once (``open_run`` ->
``Run``), and walks embedded one way (``Run.embedder`` -> ``Embedder`` -> ``Walks``).

The run folder as training writes it (checkpoints, resume, LATEST) is vid2reid.runs.
"""

from vid2reid.run.embed import Embedder, Walks, concat_walks, select_rows
from vid2reid.run.load import Run, find_run, load_init, open_run

__all__ = ["Embedder", "Run", "Walks", "concat_walks", "find_run", "load_init", "open_run",
           "select_rows"]
