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
- Every sequence file is written atomically, the manifest last. Re-running
  into the same store rewrites it: sequence files listed in the previous
  manifest that the new run does not write are deleted, so nothing of an
  earlier run with other settings stays listed.
"""

from vid2reid.importers.common import ImportSummary, NothingImportedError, SourceError
from vid2reid.importers.generic import import_csv
from vid2reid.importers.kinect import import_biwi, import_ias, import_kgbd, import_ks20

__all__ = ["ImportSummary", "NothingImportedError", "SourceError", "import_biwi", "import_csv",
           "import_ias", "import_kgbd", "import_ks20"]
