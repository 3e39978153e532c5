"""``vid2reid group`` end to end through typer's test runner: a tiny synthetic store, a run
trained on it for two epochs, the CSV, the summary, the evaluation and the report page."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from benches import people_bench
from vid2reid.cli import app
from vid2reid.settings import make_config
from vid2reid.store import read_manifest, save_sequence, write_manifest
from vid2reid.synthetic import make_synthetic_store
from vid2reid.train import train

runner = CliRunner()
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # one training run


def _err(result) -> str:
    try:
        return result.stderr
    except (ValueError, AttributeError):  # older click mixes stderr into output
        return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("group")
    store = make_synthetic_store(root / "s", n_subjects=5, walks={"nm": 2}, train_walks={"nm": 3},
                                 frames=(40, 50), seed=2)
    cfg = make_config(f=6, epochs=2, batch_size=64, hidden=32, seed=0)
    train(cfg, store, root / "run", progress=False)
    return store, root / "run"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_walk_gets_a_person_summary_and_evaluation(trained, tmp_path: Path):
    store, run = trained
    out = tmp_path / "people.csv"
    r = runner.invoke(app, ["group", "--run", str(run), "--data", str(store), "--out", str(out),
                            "--report", str(tmp_path / "rep"), "--no-progress"])
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    assert list(rows[0]) == ["path", "person", "confidence"]
    manifest = {rec.path: rec.subject for rec in read_manifest(store)}
    assert sorted(row["path"] for row in rows) == sorted(manifest)  # each walk exactly once
    person = np.array([int(row["person"]) for row in rows])
    conf = np.array([float(row["confidence"]) for row in rows])
    assert ((conf >= 0) & (conf <= 1)).all()
    sizes = np.bincount(person)
    m = re.search(r"(\d+) walks, (\d+) people found, (\d+) singletons", r.output)
    assert m and [int(g) for g in m.groups()] == [len(rows), len(set(person)),
                                                  int((sizes == 1).sum())]
    m = re.search(r"plausible number of people: (\d+)-(\d+); (\d+) walks with confidence below",
                  r.output)
    assert m and int(m.group(1)) <= len(set(person)) <= int(m.group(2))
    assert int(m.group(3)) == int((conf < 0.5).sum())
    ari = adjusted_rand_score([manifest[row["path"]] for row in rows], person)
    m = re.search(r"evaluation against the store's 5 subjects .*ARI (-?[\d.]+)", r.output)
    assert m and float(m.group(1)) == pytest.approx(ari, abs=1e-3)
    page = (tmp_path / "rep" / "index.html").read_text()
    # what the match page shows: a strip per walk (the skeleton alone: no video recorded),
    # grouped by person, the confidence beside each walk
    assert page.count("<img ") == len(rows) == page.count("data-shows='skeleton'")
    assert page.count("<span class=d>confidence ") == len(rows) and "not used to group" in page
    thumbs = list((tmp_path / "rep" / "thumbs").glob("*.jpg"))
    assert len(thumbs) == len(rows)
    import cv2

    assert all(cv2.imread(str(t)).shape[1] > cv2.imread(str(t)).shape[0] for t in thumbs)
    heads = re.findall(r"<h2>person (\d+) \((\d+) walks?\)</h2>", page)
    assert sorted(int(p) for p, _ in heads) == sorted(set(person.tolist()))
    assert all(int(n) == sizes[int(p)] for p, n in heads)
    assert "http" not in page


def test_forced_number_of_people(trained, tmp_path: Path):
    store, run = trained
    out = tmp_path / "p.csv"
    r = runner.invoke(app, ["group", "--run", str(run), "--data", str(store), "--out", str(out),
                            "--people", "3", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert len({row["person"] for row in _rows(out)}) == 3
    assert "plausible number of people: 3-3 (forced with --people)" in r.output


def test_store_without_walks_is_one_line_error(trained, tmp_path: Path):
    _, run = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    write_manifest(empty, [])
    r = runner.invoke(app, ["group", "--run", str(run), "--data", str(empty), "--out",
                            str(tmp_path / "x.csv"), "--no-progress"])
    msg = _err(r).strip()
    assert r.exit_code == 1 and len(msg.splitlines()) == 1
    assert msg.startswith("error:") and str(empty) in msg and "no sequences" in msg
    assert not (tmp_path / "x.csv").exists()


def test_run_of_another_layout_is_one_line_error(trained, tmp_path: Path):
    _, run = trained  # trained on h36m-17
    other = tmp_path / "kinect"
    rng = np.random.default_rng(0)
    recs = [save_sequence(other, f"p{k}/1.npz", rng.normal(size=(30, 20, 3)), "kinect-v1-20",
                          subject=f"p{k}", condition="nm", sequence="1", split="train")
            for k in range(3)]
    write_manifest(other, recs)
    r = runner.invoke(app, ["group", "--run", str(run), "--data", str(other), "--out",
                            str(tmp_path / "x.csv"), "--no-progress"])
    msg = _err(r).strip()
    assert r.exit_code == 1 and len(msg.splitlines()) == 1
    assert "kinect-v1-20" in msg and "h36m-17" in msg and msg.startswith("error:")


@pytest.mark.parametrize("regime,walks", [("set1", (3,) * 12), ("set2", (12,) * 6)],
                         ids=["3-walks-each", "12-walks-each-six-gaits"])
def test_generated_regimes_end_to_end(tmp_path: Path, regime: str, walks: tuple):
    """A generated Kinect store of known people (benchmarks/people.py), trained briefly with
    the default pseudo-labels, then ``vid2reid group``: people found near the truth."""
    import dataclasses

    b = people_bench()
    reg = dataclasses.replace(next(r for r in b.regimes(0) if r.name == regime), walks=walks)
    w, who, gait, layout = b.generate(reg, seed=0)
    store = b.write_store(tmp_path / "s", w, who, gait, layout)
    cfg = make_config(f=6, epochs=3, batch_size=64, hidden=32, seed=0)
    train(cfg, store, tmp_path / "run", progress=False)
    out = tmp_path / "people.csv"
    r = runner.invoke(app, ["group", "--run", str(tmp_path / "run"), "--data", str(store),
                            "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    found = len({row["person"] for row in _rows(out)})
    m = re.search(r"ARI (-?[\d.]+), pairwise precision ([\d.]+)", r.output)
    true = len(walks)
    assert m and float(m.group(1)) > 0.5 and float(m.group(2)) > 0.5
    assert true * 0.75 <= found <= true * 3
