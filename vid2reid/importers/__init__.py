"""Importers: existing skeleton data sets -> a skeleton store (``vid2reid.store``).

One function per data set, each a plain library call that returns an
``ImportSummary``:

- ``import_kgbd``, ``import_ks20``, ``import_ias``, ``import_biwi``
  (``vid2reid.importers.kinect``): the Kinect re-ID data sets, with the
  train/probe/gallery protocol of the SimMC / Hi-MPC papers written into the
  manifest (``condition`` and ``split`` columns);
- ``import_csv`` (``vid2reid.importers.generic``): a folder of per-walk
  ``.csv``/``.txt``/``.npy`` files plus a small mapping CSV.

What every importer does the same way (``vid2reid.importers.common``):

- Dropout frames are removed before anything else: a frame with a NaN or
  infinite coordinate, a frame with an all-zero joint (a joint the sensor lost
  is written as 0,0,0), and for the formats that have a tracking state, a frame
  with an untracked joint. The count per walk goes into the manifest's
  ``dropped_frames`` column; the totals, by reason, into the summary.
- Then the data set's trimming (frames cut at the start and end of every walk).
- A walk file that cannot be read is skipped with a one-line reason naming
  the file; the batch goes on. Only when nothing at all could be imported is
  that an error (``NothingImportedError``, which carries the summary).
- Only files inside the data set folder are read: a file that leads out of it
  through a symbolic link is skipped (named), and a mapping row with an
  absolute or ``..`` path is an error.
- The output folder is claimed first (vid2reid.locks): a folder holding
  something else than a store of the same importer is refused unless
  ``force``, and a second import into it at the same time is refused.
- Every sequence file is written atomically, the manifest last; before the
  first file is written an old manifest is moved aside
  (``.manifest.csv.replaced``), so a store is never read with a manifest that
  disagrees with its files (an interrupted import leaves a store that says so).
  Re-running into a store of the same importer rewrites it: sequence files
  listed in the previous manifest that the new run does not write are deleted
  (only those whose joints are still the ones that manifest recorded), so
  nothing of an earlier run with other settings stays listed.
"""

from vid2reid.importers.common import ImportSummary, NothingImportedError, SourceError
from vid2reid.importers.generic import import_csv
from vid2reid.importers.kinect import import_biwi, import_ias, import_kgbd, import_ks20

__all__ = ["ImportSummary", "NothingImportedError", "SourceError", "import_biwi", "import_csv",
           "import_ias", "import_kgbd", "import_ks20"]
