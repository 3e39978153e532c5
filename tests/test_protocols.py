"""Protocols: train/test subjects, split column, probe/gallery sequence rules, errors."""

import numpy as np
import pytest

from vid2reid.errors import ProtocolError
from vid2reid.protocols import (select_probe_gallery, eval_records, train_records,
                                train_test_records)
from vid2reid.store import Record

CASIA_WALKS = {"nm": 6, "bg": 2, "cl": 2}


def recs(subjects, walks=CASIA_WALKS, views=("090",), split="", names=None):
    names = names or {}
    out = []
    for s in subjects:
        for cond, n in walks.items():
            for k in range(1, n + 1):
                for v in views:
                    out.append(Record(subject=f"{s:03d}" if isinstance(s, int) else s,
                                      condition=names.get(cond, cond), sequence=f"{k:02d}",
                                      view=v, path=f"{s}-{cond}-{k}-{v}.npz", frames=100,
                                      split=split))
    return out


def seqs(records, idx):
    return sorted({(r.condition, r.sequence) for r in (records[i] for i in idx)})


def test_casia_subject_ranges():
    r = recs([1, 62, 63, 74, 75, 124, "bob"], walks={"nm": 1})
    train, test = train_test_records(r, "simmc")
    assert [r[i].subject for i in train] == ["001", "062"]
    assert [r[i].subject for i in test] == ["063", "074", "075", "124"]
    train, test = train_test_records(r, "opengait")
    assert [r[i].subject for i in train] == ["001", "062", "063", "074"]
    assert [r[i].subject for i in test] == ["075", "124"]
    train, test = train_test_records(r, "all")
    assert len(train) == len(test) == len(r)


def test_split_column_decides_for_every_protocol():
    r = recs([1, 2], walks={"nm": 1}, split="test") + recs([100], walks={"nm": 1}, split="train")
    for proto in ("simmc", "opengait", "all"):
        train, test = train_test_records(r, proto)
        assert [r[i].subject for i in train] == ["100"], proto
        assert [r[i].subject for i in test] == ["001", "002"], proto


def test_no_test_or_train_sequences_error_has_hint():
    r = recs(["bob", "ann"], walks={"nm": 2})
    with pytest.raises(ProtocolError, match="--protocol all"):
        eval_records(r, "simmc")
    with pytest.raises(ProtocolError, match="split column"):
        train_records(r, "opengait")
    with pytest.raises(ProtocolError, match="unknown protocol"):
        train_test_records(r, "nope")


def test_simmc_single_condition_split_by_sequence_number():
    r = recs([70, 71], names={"nm": "Normal", "bg": "Bags", "cl": "Clothes"})
    test = eval_records(r, "simmc")
    sel = select_probe_gallery(r, test, "simmc", "Normal", "nm")
    assert seqs(r, sel.gallery) == [("Normal", f"{k:02d}") for k in (1, 2, 3, 4)]
    assert seqs(r, sel.probe) == [("Normal", "05"), ("Normal", "06")]
    assert sel.standard and sel.notes == ()
    for long, code in (("Bags", "bg"), ("Clothes", "cl")):
        sel = select_probe_gallery(r, test, "simmc", code, long)
        assert seqs(r, sel.gallery) == [(long, "01")] and seqs(r, sel.probe) == [(long, "02")]
        assert len(sel.probe) == 2  # one per test subject


def test_simmc_cross_condition_uses_all_sequences():
    r = recs([70, 71])
    sel = select_probe_gallery(r, eval_records(r), "simmc", "Clothes", "Normal")
    assert seqs(r, sel.probe) == [("cl", "01"), ("cl", "02")]
    assert len(sel.gallery) == 12 and (sel.probe_condition, sel.gallery_condition) == ("cl", "nm")


def test_simmc_is_strict_and_all_falls_back_to_halves():
    r = recs([70, 71], walks={"nm": 4, "bg": 2})
    test = eval_records(r, "simmc")
    with pytest.raises(ProtocolError, match=r"nm-05,06.*nm-01,02,03,04.*--protocol all"):
        select_probe_gallery(r, test, "simmc", "Normal", "Normal")
    sel = select_probe_gallery(r, np.arange(len(r)), "all", "Normal", "Normal")
    assert seqs(r, sel.gallery) == [("nm", "01"), ("nm", "02")]
    assert seqs(r, sel.probe) == [("nm", "03"), ("nm", "04")]
    assert not sel.standard
    assert "NON-STANDARD" in sel.notes[0] and "halves" in sel.notes[1]
    # Where the simmc split exists, 'all' uses it (but stays non-standard).
    sel = select_probe_gallery(r, np.arange(len(r)), "all", "Bags", "Bags")
    assert seqs(r, sel.gallery) == [("bg", "01")] and len(sel.notes) == 1


def test_free_condition_codes_split_in_halves():
    r = recs([70], walks={"AR": 3})
    sel = select_probe_gallery(r, eval_records(r), "simmc", "AR", "AR")
    assert seqs(r, sel.gallery) == [("AR", "01"), ("AR", "02")]
    assert seqs(r, sel.probe) == [("AR", "03")] and not sel.standard
    one = recs([70], walks={"XY": 1})
    with pytest.raises(ProtocolError, match="only one sequence"):
        select_probe_gallery(one, eval_records(one), "simmc", "XY", "XY")


def test_missing_condition_lists_what_exists():
    r = recs([70], walks={"nm": 6})
    with pytest.raises(ProtocolError, match=r"no probe items.*'Bags'.*nm-01,02,03,04,05,06"):
        select_probe_gallery(r, eval_records(r), "simmc", "Bags", "Normal")
    with pytest.raises(ProtocolError, match="no gallery items"):
        select_probe_gallery(r, eval_records(r), "simmc", "Normal", "cl")


def test_opengait_gallery_and_probes():
    r = recs([80, 81], views=("000", "090"))
    test = eval_records(r, "opengait")
    sel = select_probe_gallery(r, test, "opengait", "Bags", "Normal")
    assert seqs(r, sel.gallery) == [("nm", f"{k:02d}") for k in (1, 2, 3, 4)]
    assert seqs(r, sel.probe) == [("bg", "01"), ("bg", "02")]
    sel = select_probe_gallery(r, test, "opengait", "nm", "nm")
    assert seqs(r, sel.probe) == [("nm", "05"), ("nm", "06")]
    with pytest.raises(ProtocolError, match="gallery as nm only"):
        select_probe_gallery(r, test, "opengait", "bg", "bg")
