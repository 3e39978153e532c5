"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""


class Vid2ReidError(Exception):
    """Base class: a problem with the user's input or settings, not a bug."""


class StoreError(Vid2ReidError):
    """The skeleton store (manifest or a sequence file) is missing or malformed."""


class ConfigError(Vid2ReidError):
    """An option, preset or configuration value is invalid."""


class ClusteringError(Vid2ReidError):
    """Clustering found nothing to train on (e.g. DBSCAN labelled everything noise)."""


class ProtocolError(Vid2ReidError):
    """An evaluation protocol cannot be applied (e.g. no probe or gallery items)."""


class PoseError(Vid2ReidError):
    """Pose estimation could not run (missing weights, unreadable video, ...)."""


class LockError(Vid2ReidError):
    """Another process is writing the same output folder (a run or a store)."""


class RunError(Vid2ReidError):
    """A trained run folder cannot be used: missing, unfinished, or a file in it is wrong.

    The message names the file and, for a setting, the field."""
