"""``vid2reid eval`` side by side with raw coordinates, ``--report DIR``, file modes under the
user's umask, and ``vid2reid train``'s protocol warning and clean failure; real files, real CLI."""

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tiny import tiny_options
from vid2reid.cli import app
from vid2reid.metrics import rank_metrics
from vid2reid.report import cmc_curve
from vid2reid.render.samples import synthesize_ground_truth
from vid2reid.store import save_sequence, write_manifest
from vid2reid.synthetic import make_synthetic_store

runner = CliRunner()
TINY = tiny_options(epochs=2, one_thread=False)
pytest.importorskip("matplotlib")


def _err(result) -> str:
    try:
        return result.stderr
    except (ValueError, AttributeError):  # older click mixes stderr into output
        return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A synthetic store and a 2-epoch run, all written under umask 027."""
    root = tmp_path_factory.mktemp("report")
    old = os.umask(0o027)
    try:
        store = make_synthetic_store(root / "skeletons", n_subjects=6, frames=(60, 80), seed=11)
        r = runner.invoke(app, ["train", "--data", str(store), "--out", str(root / "runs" / "r")]
                          + TINY)
        assert r.exit_code == 0, r.output
        out = root / "report"
        r = runner.invoke(app, ["eval", "--data", str(store), "--run", str(root / "runs" / "r"),
                                "--probe", "Bags", "--gallery", "Normal", "--report", str(out),
                                "--json", str(root / "m.json")])
        assert r.exit_code == 0, r.output
    finally:
        os.umask(old)
    return root, store, out, r.output


def test_eval_prints_trained_and_raw_side_by_side(trained):
    root, _, _, output = trained
    assert "trained model" in output and "raw coordinates" in output
    assert re.search(r"^meaning: .*(beat|level|split).*points", output, re.M)
    assert output.rstrip().splitlines()[-1].startswith(("note:", "meaning:", "sequence"))
    res = json.loads((root / "m.json").read_text())
    assert res["representation"] == "run" and res["raw"]["representation"] == "raw"
    assert res["raw"]["f"] == res["f"] == 20
    assert res["raw"]["window"]["probes"] == res["window"]["probes"]


def test_report_files_and_a_self_contained_page(trained):
    _, _, out, output = trained
    assert f"report written to {out / 'index.html'}" in output
    for name in ("cmc.png", "feature_map.png", "training.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    page = (out / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    sources = re.findall(r"<img[^>]*src='([^']*)'", page)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # nothing to fetch: opens offline
    assert "CMC curve" in page and "Training curves" in page and "Feature map" in page
    assert "raw coordinates" in page


def test_files_are_written_with_the_users_umask(trained):
    root, store, out, _ = trained
    files = [store / "manifest.csv", next(store.rglob("*.npz")), root / "m.json",
             out / "index.html", out / "cmc.png"]
    run = root / "runs" / "r"
    files += [run / n for n in ("config.json", "checkpoint.pt", "model.pt", "log.jsonl")]
    files.append(root / "runs" / "LATEST")
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f  # 0666 & ~027, not mkstemp's 0600


def test_cmc_curve_agrees_with_rank_metrics():
    rng = np.random.default_rng(3)
    pid, gid = rng.integers(0, 8, 60), rng.integers(0, 8, 90)
    px = np.round(rng.normal(size=(60, 4)), 1)  # rounded: ties happen
    gx = np.round(rng.normal(size=(90, 4)), 1)
    pg, gg = np.arange(60) % 7, np.arange(90) % 7  # some gallery items share a probe's video
    cmc, n = cmc_curve(pid, gid, px, gx, pg, gg, max_rank=20)
    ref = rank_metrics(pid, gid, px, gx, probe_groups=pg, gallery_groups=gg)
    assert n == ref.probes
    assert cmc[0] == pytest.approx(ref.top1) and cmc[4] == pytest.approx(ref.top5)
    assert cmc[9] == pytest.approx(ref.top10)
    assert np.all(np.diff(cmc) >= 0)


def test_train_warns_when_the_protocol_leaves_nothing_to_test(tmp_path: Path):
    store = tmp_path / "skeletons"
    synthesize_ground_truth(store, 3, 0, frames=45, conditions=(("nm", 2),))  # 001-003 only
    r = runner.invoke(app, ["train", "--data", str(store), "--out", str(tmp_path / "run")] + TINY)
    assert r.exit_code == 0, r.output
    warning = [line for line in _err(r).splitlines() if "leaves nothing to test" in line]
    assert len(warning) == 1 and "--protocol all" in warning[0]


def test_a_failed_train_leaves_no_run_folder(tmp_path: Path):
    store = tmp_path / "skeletons"
    joints = np.random.default_rng(0).normal(size=(45, 17, 3)).astype(np.float32)
    write_manifest(store, [save_sequence(store, "080.npz", joints, "h36m-17", subject="080",
                                         condition="nm", sequence="01", view="090")])
    run = tmp_path / "runs" / "r"
    r = runner.invoke(app, ["train", "--data", str(store), "--out", str(run)] + TINY)
    assert r.exit_code == 1
    assert "no train sequences" in _err(r)
    assert not run.exists()


def test_training_picture_names_the_runs_classes_and_leaves_out_empty_panels(trained):
    """The default run (people, no outlier ever): its classes are named as such, not
    as DBSCAN clusters, and the outliers panel, all zeros, is left out."""
    root, _, out, _ = trained
    log_rows = [json.loads(line) for line in (root / "runs" / "r" / "log.jsonl").read_text().splitlines()]
    assert log_rows and all(r["outliers"] == 0 for r in log_rows)  # the premise, from the log
    page = (out / "index.html").read_text()
    caption = re.search(r"<h2>Training curves</h2>.*?<figcaption>(.*?)</figcaption>", page, re.S)
    assert caption is not None
    text = caption.group(1)
    assert "classes: people" in text and "DBSCAN" not in text
    assert "outliers (windows" not in text and "No window was left out as an outlier" in text


def test_training_panels_follow_the_config_and_the_log():
    from vid2reid.report import plot_training, training_panels

    dbscan = [{"epoch": 1, "loss": 2.0, "clusters": 9, "outliers": 4, "label_ari": None},
              {"epoch": 2, "loss": 1.5, "clusters": 7, "outliers": 0, "label_ari": 0.8}]
    titles = [t for _, t in training_panels(dbscan, {"pseudo_labels": "clusters"})]
    assert titles[0] == "loss" and titles[1] == "classes: clusters (DBSCAN over windows)"
    assert titles[2].startswith("outliers") and titles[3].startswith("pseudo-label agreement")
    # a run from before pseudo_labels was recorded clustered with DBSCAN
    assert "DBSCAN" in training_panels(dbscan, {"method": "simmc"})[1][1]
    groups = [{"epoch": e, "loss": 1.0 / e, "clusters": 20 - e, "outliers": 0,
               "label_ari": None if e == 1 else 0.9} for e in (1, 2, 3)]
    keys = [k for k, _ in training_panels(groups, {"pseudo_labels": "walk-groups", "walk_warmup": 2})]
    assert keys == ["loss", "clusters", "label_ari"]
    title = dict(training_panels(groups, {"pseudo_labels": "walk-groups", "walk_warmup": 2}))["clusters"]
    assert "walk groups" in title and "epochs 1-2" in title
    walks = dict(training_panels(groups, {"pseudo_labels": "walks", "walk_warmup": 2}))["clusters"]
    assert "every walk its own class" in walks and "epochs" not in walks
    # SM-SGE logs only a loss: one panel, no empty ones
    png, drawn = plot_training([{"epoch": 1, "loss": 3.0}, {"epoch": 2, "loss": 2.5}],
                               {"method": "sm-sge", "pseudo_labels": "walk-groups"})
    assert drawn == ["loss"] and png[:8] == b"\x89PNG\r\n\x1a\n"
