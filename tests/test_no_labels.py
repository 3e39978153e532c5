"""No identity label reaches training.

The manifest's subject (and condition, sequence, view) columns are labels: training may read
them only to pick the train split. These tests rename them in the manifest file (paths and
rows untouched) and require the very same training run, and they check the training set by
the sequence files it was cut from, loaded here with numpy, not by subject.
"""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from vid2reid.synthetic import make_synthetic_store
from vid2reid.settings import make_config
from vid2reid.train import epoch_windows, train
from vid2reid.data import training_sequences

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(f=20, x=5, eps=0.5, batch_size=64, hidden=64)


def _rewrite_manifest(store: Path, change) -> None:
    """Rewrite manifest.csv with the csv module (not vid2reid's writer): ``change(row)`` edits
    each row in place; rows stay in their order, paths untouched."""
    path = store / "manifest.csv"
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        change(row)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _copy_store(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _reverse_labels(row: dict) -> None:
    # the subject order is reversed (001 -> zz-999, 002 -> zz-998, ...), conditions and views
    # renamed too; sorting by any of them now gives another order than the paths
    row["subject"] = f"zz-{1000 - int(row['subject']):03d}"
    row["condition"] = {"nm": "walk", "bg": "carry", "cl": "coat"}[row["condition"]]
    row["view"] = "side"


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels")
    a = make_synthetic_store(root / "a", n_subjects=8, walks={"nm": 2, "bg": 1},
                             frames=(50, 70), seed=7)
    b = _copy_store(a, root / "b")
    _rewrite_manifest(b, _reverse_labels)
    return a, b


@pytest.mark.parametrize("preset", ["casia-b", None], ids=["clusters", "default-people"])
def test_renamed_subjects_train_identically(stores, tmp_path: Path, preset):
    """With a preset (DBSCAN clusters) and with the default (walks grouped into people, past
    the warm-up: 3 epochs), renamed subjects give the very same run."""
    a, b = stores
    assert (a / "manifest.csv").read_text() != (b / "manifest.csv").read_text()
    results, weights = [], []
    for name, store in (("a", a), ("b", b)):
        cfg = (make_config("casia-b", epochs=2, seed=4, **SMALL) if preset else
               make_config(epochs=3, seed=4, walk_warmup=1, f=20, x=5, batch_size=64, hidden=64))
        res = train(cfg, store, tmp_path / name, progress=False)
        results.append(res)
        weights.append(torch.load(tmp_path / name / "model.pt", weights_only=True)["model"])
    assert [h["loss"] for h in results[0].history] == [h["loss"] for h in results[1].history]
    assert [h["clusters"] for h in results[0].history] == [h["clusters"] for h in results[1].history]
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


def test_training_windows_do_not_depend_on_labels(stores):
    a, b = stores
    cfg = make_config("casia-b", windows="shifted", **SMALL)
    xa, ka = epoch_windows(training_sequences(a, cfg)[0], cfg, np.random.default_rng(9))
    xb, kb = epoch_windows(training_sequences(b, cfg)[0], cfg, np.random.default_rng(9))
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ka, kb)


def _manifest_rows(store: Path) -> list[dict]:
    with open(store / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_training_set_is_the_train_rows_by_path_on_a_same_people_store(tmp_path: Path):
    """Kinect data-set style: every person has train AND test walks, so a subject-based
    selection would let test walks in. The training set must be exactly the train rows' files,
    in manifest order, their frames root-relative as loaded here."""
    walks = {"nm": 2, "bg": 1}
    store = make_synthetic_store(tmp_path / "s", n_subjects=4, walks=walks, train_walks=walks,
                                 frames=(30, 45), seed=2)
    rows = _manifest_rows(store)
    train_rows = [r for r in rows if r["split"] == "train"]
    test_rows = [r for r in rows if r["split"] == "test"]
    assert {r["subject"] for r in train_rows} == {r["subject"] for r in test_rows}  # same people
    cfg = make_config("casia-b", **{**SMALL, "f": 40, "x": 10})
    bank, records, layout = training_sequences(store, cfg)
    expected_paths = [r["path"] for r in train_rows if int(r["frames"]) >= 40]
    assert 0 < len(expected_paths) < len(train_rows)  # some walks are shorter than f
    assert [r.path for r in records] == expected_paths
    assert not {r.path for r in records} & {r["path"] for r in test_rows}
    # the frames that reach the method: each file's joints minus its root joint (h36m: 0)
    expected = []
    for p in expected_paths:
        j = np.load(store / p)["joints"].astype(np.float32)
        expected.append(j - j[:, :1])
    np.testing.assert_array_equal(bank.frames, np.concatenate(expected))
    np.testing.assert_array_equal(bank.length, [len(e) for e in expected])
    assert layout == "h36m-17"
