"""Train/test protocols: which sequences train and which are evaluated.

A store's ``split`` column decides when any record has one. Otherwise the
protocol does, using CASIA-B subject numbers (``001``..``124``):

- ``simmc`` (default): subjects 001-062 train, 063-124 test (SimMC's split).
- ``opengait``: subjects 001-074 train, 075-124 test (OpenGait's LT split).
- ``all``: every sequence is used for both (NON-STANDARD, transductive; only
  for tiny sample sets, and every output must say so).
"""

from __future__ import annotations

import logging

import numpy as np

from vid2reid.errors import ProtocolError
from vid2reid.store import Record

log = logging.getLogger(__name__)

PROTOCOLS = ("simmc", "opengait", "all")
_LAST_TRAIN_SUBJECT = {"simmc": 62, "opengait": 74}


def _subject_number(subject: str) -> int | None:
    try:
        return int(subject)
    except ValueError:
        return None


def train_test_records(records: list[Record], protocol: str = "simmc") -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and the test records under ``protocol``.

    When any record has a ``split`` value, the split column decides and the
    protocol's subject ranges are not used (records without a value are left
    out of both). ``all`` returns every record for both sides.
    """
    protocol = protocol.strip().lower()
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    n = len(records)
    if protocol == "all":
        log.warning("protocol 'all' is NON-STANDARD: it trains and evaluates on every sequence")
        every = np.arange(n)
        return every, every.copy()
    splits = [r.split for r in records]
    if any(splits):
        train = np.array([i for i, s in enumerate(splits) if s == "train"], dtype=np.int64)
        test = np.array([i for i, s in enumerate(splits) if s == "test"], dtype=np.int64)
        unassigned = n - len(train) - len(test)
        if unassigned:
            log.warning("%d sequence(s) have an empty 'split' value and are not used", unassigned)
        return train, test
    last = _LAST_TRAIN_SUBJECT[protocol]
    nums = [_subject_number(r.subject) for r in records]
    train = np.array([i for i, k in enumerate(nums) if k is not None and k <= last], dtype=np.int64)
    test = np.array([i for i, k in enumerate(nums) if k is not None and k > last], dtype=np.int64)
    return train, test


def train_records(records: list[Record], protocol: str = "simmc") -> np.ndarray:
    """Indices of the training records; ProtocolError with a hint when there are none."""
    train, _ = train_test_records(records, protocol)
    if len(train) == 0:
        raise ProtocolError(
            f"no training sequences under protocol {protocol!r}: the store has no 'split' column "
            f"marking 'train' rows and no subjects numbered like CASIA-B (001-"
            f"{_LAST_TRAIN_SUBJECT.get(protocol, 62):03d}); add a split column to manifest.csv "
            f"or use --protocol all (non-standard)")
    return train
