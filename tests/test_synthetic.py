"""The synthetic walker generator: both protocols' splits, and bodies fixed per identity."""

from pathlib import Path

import numpy as np

from vid2reid.store import load_store
from vid2reid.synthetic import make_synthetic_store


def _bone(j: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(j[:, a] - j[:, b], axis=1).mean())


def test_new_people_protocol_splits_subjects_in_halves(tmp_path: Path):
    store = load_store(make_synthetic_store(tmp_path / "s", n_subjects=4,
                                            walks={"nm": 2, "bg": 1}, seed=0))
    split = {r.subject: r.split for r in store.records}
    assert split == {"001": "train", "002": "train", "003": "test", "004": "test"}
    assert len(store.records) == 4 * 3


def test_same_people_protocol_trains_on_other_walks(tmp_path: Path):
    store = load_store(make_synthetic_store(tmp_path / "s", n_subjects=3,
                                            walks={"nm": 2, "bg": 1},
                                            train_walks={"nm": 2, "cl": 1}, seed=0))
    seqs = {(r.split, r.condition, r.sequence) for r in store.records if r.subject == "002"}
    assert seqs == {("test", "nm", "01"), ("test", "nm", "02"), ("test", "bg", "01"),
                    ("train", "nm", "03"), ("train", "nm", "04"), ("train", "cl", "01")}
    assert {r.subject for r in store.records if r.split == "train"} == {"001", "002", "003"}


def test_bone_lengths_are_a_person_constant(tmp_path: Path):
    store = load_store(make_synthetic_store(tmp_path / "s", n_subjects=2,
                                            walks={"nm": 3}, noise=0.0, seed=1))
    # h36m-17: right thigh = hip 1 -> knee 2, left shin = knee 5 -> ankle 6
    thigh = {}
    for rec, j in zip(store.records, store.joints):
        thigh.setdefault(rec.subject, []).append(_bone(j, 1, 2))
    for lengths in thigh.values():
        assert np.ptp(lengths) < 1e-5
    assert abs(thigh["001"][0] - thigh["002"][0]) > 1e-3
