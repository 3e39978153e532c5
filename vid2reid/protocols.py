"""Evaluation protocols as data: which sequences train, which are probes, which gallery.

A store's ``split`` column decides train/test when any record has one, under
every protocol. Otherwise the protocol does, using CASIA-B subject numbers
(``001``..``124``); docs/protocols.md says the same for users:

- ``simmc`` (default): subjects 001-062 train, 063-124 test. Single-condition
  settings split by sequence number (Normal: gallery nm-01..04, probe
  nm-05..06; Bags: gallery bg-01, probe bg-02; Clothes: gallery cl-01, probe
  cl-02), cross-condition settings use every sequence of each condition.
  This is vid2reid's honest variant: a probe never meets its own video.
- ``opengait``: subjects 001-074 train, 075-124 test; gallery nm-01..04,
  probes nm-05..06, bg-01..02 or cl-01..02; rank-1 per probe view averaged
  over the gallery views other than the probe's, then over probe views.
- ``all``: every sequence is used for both training and test (NON-STANDARD,
  transductive, no labels in training; for tiny sample sets; every output says
  so). Single-condition settings split as ``simmc`` where those sequences
  exist, otherwise the sorted sequence numbers are split in halves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2reid.errors import ProtocolError
from vid2reid.store import Record, canonical_condition

log = logging.getLogger(__name__)

_SIMMC_SPLIT = (("nm", (1, 2, 3, 4), (5, 6)), ("bg", (1,), (2,)), ("cl", (1,), (2,)))


@dataclass(frozen=True)
class Protocol:
    """One protocol's rules (all plain data)."""

    name: str
    # CASIA-B subjects numbered <= this train, the others test; None = all sequences both.
    last_train_subject: int | None
    # Single-condition (probe == gallery) settings: (condition, gallery seqs, probe seqs).
    same_condition_split: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()
    # Split sorted sequence numbers in halves when the table above does not fit the data.
    halves_fallback: bool = False
    # Sequences always used for gallery / probes of a condition (any setting).
    gallery_sequences: tuple[tuple[str, tuple[int, ...]], ...] = ()
    probe_sequences: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Only these gallery conditions are defined (None: any).
    gallery_conditions: tuple[str, ...] | None = None
    # Score each probe view against each other gallery view and average (OpenGait).
    cross_view: bool = False
    standard: bool = True
    note: str = ""


PROTOCOLS: dict[str, Protocol] = {
    "simmc": Protocol("simmc", last_train_subject=62, same_condition_split=_SIMMC_SPLIT),
    "opengait": Protocol("opengait", last_train_subject=74,
                         same_condition_split=(("nm", (1, 2, 3, 4), (5, 6)),),
                         gallery_sequences=(("nm", (1, 2, 3, 4)),),
                         probe_sequences=(("nm", (5, 6)),), gallery_conditions=("nm",),
                         cross_view=True),
    "all": Protocol("all", last_train_subject=None, same_condition_split=_SIMMC_SPLIT,
                    halves_fallback=True, standard=False,
                    note="NON-STANDARD protocol 'all': transductive, without a split column "
                         "every sequence is used for training (without labels) and for testing"),
}


@dataclass(frozen=True)
class Selection:
    """Probe and gallery records (indices into the record list) and how they were chosen."""

    probe: np.ndarray
    gallery: np.ndarray
    probe_condition: str
    gallery_condition: str
    notes: tuple[str, ...] = ()
    standard: bool = True


def get_protocol(name: str) -> Protocol:
    """Look a protocol up by name (case-insensitive)."""
    try:
        return PROTOCOLS[name.strip().lower()]
    except KeyError:
        raise ProtocolError(f"unknown protocol {name!r}; choose one of "
                            f"{', '.join(PROTOCOLS)}") from None


def _subject_number(subject: str) -> int | None:
    try:
        return int(subject)
    except ValueError:
        return None


def uses_split_column(records: list[Record]) -> bool:
    """True when the manifest's ``split`` column decides train/test."""
    return any(r.split for r in records)


def train_test_records(records: list[Record],
                       protocol: str = "simmc") -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and the test records under ``protocol``.

    When any record has a ``split`` value, the split column decides for every
    protocol (records without a value are left out of both). Otherwise
    ``all`` returns every record for both sides and the others use CASIA-B
    subject ranges (``all`` is non-standard: its callers say so).
    """
    proto = get_protocol(protocol)
    n = len(records)
    splits = [r.split for r in records]
    if any(splits):
        train = np.array([i for i, s in enumerate(splits) if s == "train"], dtype=np.int64)
        test = np.array([i for i, s in enumerate(splits) if s == "test"], dtype=np.int64)
        unassigned = n - len(train) - len(test)
        if unassigned:
            log.warning("%d sequence(s) have an empty 'split' value and are not used", unassigned)
        return train, test
    if proto.last_train_subject is None:
        # not logged here: training warns once, evaluation says it in its table and notes
        every = np.arange(n, dtype=np.int64)
        return every, every.copy()
    last = proto.last_train_subject
    nums = [_subject_number(r.subject) for r in records]
    train = np.array([i for i, k in enumerate(nums) if k is not None and 1 <= k <= last],
                     dtype=np.int64)
    test = np.array([i for i, k in enumerate(nums) if k is not None and k > last], dtype=np.int64)
    return train, test


def _no_sequences_hint(protocol: str, side: str) -> str:
    last = PROTOCOLS[protocol].last_train_subject or 0
    return (f"no {side} sequences under protocol {protocol!r}: the store has no 'split' column "
            f"marking '{side}' rows and no subjects numbered like CASIA-B "
            f"({'001' if side == 'train' else f'{last + 1:03d}'}-"
            f"{last if side == 'train' else 124:03d}); add a split column to manifest.csv "
            f"or use --protocol all (non-standard)")


def train_records(records: list[Record], protocol: str = "simmc", say: bool = True
                  ) -> np.ndarray:
    """Indices of the training records.

    A store without a ``split`` column whose subjects the protocol's ranges do not place (no
    subject numbered like CASIA-B: a user's own clips, named as they like) trains on every
    walk: a label-free method needs no split, so this is said in one line (``say``), not
    refused. ProtocolError with a hint when a split column marks no 'train' row, or when
    CASIA-B-numbered subjects all fall on the test side (training on them would train on
    eval's test people).
    """
    train, _ = train_test_records(records, protocol)
    if len(train) == 0 and records and not uses_split_column(records) and not any(
            _subject_number(r.subject) is not None for r in records):
        if say:
            log.info("training on every walk (%d): the store has no 'split' column and no subject "
                     "in protocol %s's training range; label-free training needs no split",
                     len(records), get_protocol(protocol).name)
        return np.arange(len(records), dtype=np.int64)
    if len(train) == 0:
        raise ProtocolError(_no_sequences_hint(get_protocol(protocol).name, "train"))
    return train


def _unnamed(records: list[Record]) -> int:
    """How many records name no identity: their subject is only the video's file name."""
    return sum(1 for r in records if not r.subject or dict(r.extra).get("name_format") ==
               "filename")


def eval_records(records: list[Record], protocol: str = "simmc") -> np.ndarray:
    """Indices of the test records; ProtocolError with a hint when there are none, saying
    what the store lacks (identities, or a split / test subjects)."""
    unnamed = _unnamed(records)
    if records and unnamed == len(records):
        raise ProtocolError(
            f"eval needs identities, and none of the store's {len(records)} walks has one: their "
            f"subjects are the videos' file names (training needs none, scoring does); name the "
            f"clips SUBJECT-CONDITION-SEQUENCE-VIEW (e.g. 001-nm-01-090.avi, extract's "
            f"--pattern for other names) or fill in manifest.csv's subject and split columns")
    _, test = train_test_records(records, protocol)
    if len(test) == 0:
        raise ProtocolError(_no_sequences_hint(get_protocol(protocol).name, "test"))
    return test


def _seq_key(seq: str) -> tuple[int, int | str]:
    """Numeric sequence labels compare as numbers ('01' == '1'), others as text."""
    s = seq.strip()
    return (0, int(s)) if s.isdigit() else (1, s)


def _fmt(cond: str, seqs) -> str:
    labels = [f"{v:02d}" if isinstance(v, int) else str(v) for _, v in sorted(seqs)]
    return f"{cond}-" + ",".join(labels) if labels else f"{cond} (none)"


def _describe(by_cond: dict[str, set]) -> str:
    return "; ".join(_fmt(c, s) for c, s in sorted(by_cond.items())) or "none"


def select_probe_gallery(records: list[Record], test_idx: np.ndarray, protocol: str,
                         probe: str, gallery: str) -> Selection:
    """Probe and gallery records among ``test_idx`` for a (probe, gallery) condition setting.

    ProtocolError when either side is empty, listing the conditions and
    sequence numbers that exist in the test set.
    """
    proto = get_protocol(protocol)
    p, g = canonical_condition(probe), canonical_condition(gallery)
    if proto.gallery_conditions is not None and g not in proto.gallery_conditions:
        raise ProtocolError(f"protocol {proto.name!r} defines the gallery as "
                            f"{'/'.join(proto.gallery_conditions)} only, not {gallery!r}; "
                            f"use --gallery Normal or --protocol simmc")
    test_idx = np.asarray(test_idx, dtype=np.int64)
    by_cond: dict[str, set] = {}
    for i in test_idx:
        r = records[i]
        by_cond.setdefault(canonical_condition(r.condition), set()).add(_seq_key(r.sequence))
    for side, cond, name in (("probe", p, probe), ("gallery", g, gallery)):
        if cond not in by_cond:
            raise ProtocolError(f"no {side} items: condition {name!r} ({cond}) has no test "
                                f"sequences; test conditions present: {_describe(by_cond)}")
    notes: list[str] = []
    standard = proto.standard
    gal_seqs = prb_seqs = None  # None = every sequence of the condition
    if p == g:
        rule = {c: (gs, ps) for c, gs, ps in proto.same_condition_split}.get(p)
        present = by_cond[p]
        if rule is not None:
            gal_seqs = {(0, v) for v in rule[0]}
            prb_seqs = {(0, v) for v in rule[1]}
        fits = rule is not None and bool(gal_seqs & present) and bool(prb_seqs & present)
        if rule is None or (not fits and proto.halves_fallback):
            ordered = sorted(present)
            if len(ordered) < 2:
                raise ProtocolError(f"no probe items: condition {p!r} has only one sequence "
                                    f"number ({_fmt(p, ordered)}); a single-condition setting "
                                    f"needs two, to keep probe and gallery videos apart")
            half = len(ordered) - len(ordered) // 2
            gal_seqs, prb_seqs = set(ordered[:half]), set(ordered[half:])
            notes.append(f"{p}-{p}: gallery {_fmt(p, gal_seqs)}, probe {_fmt(p, prb_seqs)}: "
                         f"sequence numbers split in halves (not the CASIA-B split)")
            standard = False
    if gal_seqs is None:
        gal_seqs = {(0, v) for v in dict(proto.gallery_sequences).get(g, ())} or None
    if prb_seqs is None:
        prb_seqs = {(0, v) for v in dict(proto.probe_sequences).get(p, ())} or None

    def pick(cond: str, seqs: set | None) -> np.ndarray:
        return np.array([i for i in test_idx
                         if canonical_condition(records[i].condition) == cond
                         and (seqs is None or _seq_key(records[i].sequence) in seqs)],
                        dtype=np.int64)

    probe_idx, gallery_idx = pick(p, prb_seqs), pick(g, gal_seqs)
    for side, idx, cond, seqs in (("probe", probe_idx, p, prb_seqs),
                                  ("gallery", gallery_idx, g, gal_seqs)):
        if len(idx) == 0:
            hint = " or --protocol all (splits sequence numbers in halves)" \
                if not proto.halves_fallback else ""
            raise ProtocolError(f"no {side} items: protocol {proto.name!r} takes {side} "
                                f"sequences {_fmt(cond, seqs or ())} but the test set has "
                                f"{_describe(by_cond)}; choose other --probe/--gallery "
                                f"conditions{hint}")
    if not proto.standard:
        notes.insert(0, proto.note)
    return Selection(probe_idx, gallery_idx, p, g, tuple(notes), standard)


def warn_if_nothing_to_test(data: Path | str, protocol: str) -> None:
    """Warn before training when the protocol puts no sequence of the store on the test side."""
    from vid2reid.errors import Vid2ReidError
    from vid2reid.store import read_manifest

    try:
        proto = get_protocol(protocol)
        if proto.last_train_subject is None:
            return
        train, test = train_test_records(read_manifest(data), proto.name)
    except Vid2ReidError:
        return  # training reports a bad store or protocol itself
    if len(test) == 0 and len(train) > 0:  # with neither, training says it trains on every walk
        log.warning(
            "warning: protocol %r leaves nothing to test in %s (no 'split' column, and no subject "
            "numbered above %03d): 'vid2reid eval' will have no test sequences; number test people "
            "%03d-124, add a split column, or use --protocol all (non-standard)",
            proto.name, data, proto.last_train_subject, proto.last_train_subject + 1)
