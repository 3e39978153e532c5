"""Protocols: train/test subjects, split column, probe/gallery sequence rules, errors."""

import dataclasses

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
    # training needs no split: a store with neither a split column nor CASIA-B numbers trains
    # on every walk; a split column marking no 'train' row is still refused
    assert list(train_records(r, "opengait")) == list(range(len(r)))
    only_test = [dataclasses.replace(x, split="test") for x in r]
    with pytest.raises(ProtocolError, match="split column"):
        train_records(only_test, "opengait")
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


# --- Protocols end to end, against an oracle built here from the files and rank_metrics ------

import csv  # noqa: E402
from pathlib import Path  # noqa: E402

from vid2reid.evaluate import evaluate  # noqa: E402
from vid2reid.metrics import rank_metrics  # noqa: E402
from vid2reid.store import save_sequence, write_manifest  # noqa: E402
from vid2reid.synthetic import random_body, walk  # noqa: E402

F = 20  # window length of these tests; the walks have 45-47 frames: 2 windows + leftovers


def casia_store(root: Path, subjects, views=("090",), walks=CASIA_WALKS, seed=0) -> Path:
    """A store named like CASIA-B, with NO split column (subject numbers decide)."""
    rng = np.random.default_rng(seed)
    recs = []
    for s in subjects:
        body = random_body(rng)
        for cond, n in walks.items():
            for k in range(1, n + 1):
                for v in views:
                    t = int(rng.integers(45, 48))
                    j = walk(body, t, rng, cond, float(v))
                    recs.append(save_sequence(root, f"{s:03d}-{cond}-{k:02d}-{v}.npz", j,
                                              "h36m-17", subject=f"{s:03d}", condition=cond,
                                              sequence=f"{k:02d}", view=v))
    write_manifest(root, recs)
    return root


def oracle_items(store: Path, keep) -> dict:
    """Raw-baseline items of the manifest rows for which ``keep(row)`` holds, by hand: joints
    from the .npz, minus joint 0 (h36m root), non-overlapping f-frame slices from frame 0
    (leftover frames dropped), mean over frames, flattened; sequence level = mean per video."""
    with open(store / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if keep(r)]
    assert rows
    win = {"x": [], "id": [], "video": [], "view": []}
    for r in rows:
        j = np.load(store / r["path"])["joints"].astype(np.float64)
        rel = j - j[:, :1]
        for s in range(0, len(rel) - F + 1, F):
            win["x"].append(rel[s:s + F].mean(axis=0).ravel())
            win["id"].append(r["subject"])
            win["video"].append("|".join((r["subject"], r["condition"], r["sequence"], r["view"])))
            win["view"].append(r["view"])
    win = {k: np.array(v) for k, v in win.items()}
    videos = sorted(set(win["video"]))
    seq = {"x": np.array([win["x"][win["video"] == v].mean(axis=0) for v in videos]),
           "video": np.array(videos)}
    first = [int(np.flatnonzero(win["video"] == v)[0]) for v in videos]
    seq.update(id=win["id"][first], view=win["view"][first])
    return {"window": win, "sequence": seq}


def _metrics(p: dict, g: dict, pm=slice(None), gm=slice(None)):
    return rank_metrics(p["id"][pm], g["id"][gm], p["x"][pm], g["x"][gm],
                        probe_groups=p["video"][pm], gallery_groups=g["video"][gm])


def _close(result: dict, expected: dict):
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-9), key


def _test_subject(last):
    return lambda r: int(r["subject"]) > last


@pytest.fixture(scope="module")
def three_views(tmp_path_factory) -> Path:
    return casia_store(tmp_path_factory.mktemp("og") / "s", [1, 2, 75, 76, 77, 78],
                       views=("000", "090", "180"), walks={"nm": 6, "bg": 2}, seed=4)


def test_opengait_is_rank_metrics_per_view_pair_averaged(three_views: Path):
    store = three_views
    res = evaluate(store, baseline="raw", probe="Bags", gallery="Normal", f=F,
                   protocol="opengait")
    test = _test_subject(74)
    probe = oracle_items(store, lambda r: test(r) and r["condition"] == "bg")
    gallery = oracle_items(store, lambda r: test(r) and r["condition"] == "nm"
                           and int(r["sequence"]) <= 4)
    for level in ("window", "sequence"):
        p, g = probe[level], gallery[level]
        per_view = {}
        for pv in sorted(set(p["view"])):
            pairs = [_metrics(p, g, p["view"] == pv, g["view"] == gv)
                     for gv in sorted(set(g["view"]) - {pv})]
            per_view[pv] = {k: np.mean([getattr(m, k) for m in pairs])
                            for k in ("top1", "top5", "top10", "mAP")}
        expected = {k: np.mean([v[k] for v in per_view.values()])
                    for k in ("top1", "top5", "top10", "mAP")}
        _close(res[level], expected)
        assert res[level]["probes"] == len(p["id"]) and res[level]["gallery"] == len(g["id"])
        assert res[level]["top1_per_probe_view"] == pytest.approx(
            {v: m["top1"] for v, m in per_view.items()})
    assert res["window"]["probes"] == 4 * 2 * 3 * 2  # subjects x bg walks x views x windows
    # the same-view pairs would score differently: the oracle is not trivially equal
    same_view = np.mean([_metrics(probe["window"], gallery["window"],
                                  probe["window"]["view"] == v,
                                  gallery["window"]["view"] == v).top1 for v in ("000", "090")])
    assert same_view != pytest.approx(res["window"]["top1"])


@pytest.fixture(scope="module")
def casia_like(tmp_path_factory) -> Path:
    # 001-003 train under both protocols, 070 is training under opengait only, 063.. test
    return casia_store(tmp_path_factory.mktemp("casia") / "s", [1, 2, 3, 63, 64, 65, 70, 75],
                       views=("000", "090"), seed=6)


@pytest.mark.parametrize("probe, gallery, probe_rows, gallery_rows", [
    ("Bags", "Normal", lambda r: r["condition"] == "bg", lambda r: r["condition"] == "nm"),
    ("Normal", "Normal", lambda r: r["condition"] == "nm" and r["sequence"] in ("05", "06"),
     lambda r: r["condition"] == "nm" and r["sequence"] in ("01", "02", "03", "04")),
    ("Clothes", "Clothes", lambda r: r["condition"] == "cl" and r["sequence"] == "02",
     lambda r: r["condition"] == "cl" and r["sequence"] == "01"),
])
def test_simmc_settings_equal_the_oracle(casia_like: Path, probe, gallery, probe_rows,
                                          gallery_rows):
    res = evaluate(casia_like, baseline="raw", probe=probe, gallery=gallery, f=F)
    test = _test_subject(62)
    p = oracle_items(casia_like, lambda r: test(r) and probe_rows(r))
    g = oracle_items(casia_like, lambda r: test(r) and gallery_rows(r))
    for level in ("window", "sequence"):
        m = _metrics(p[level], g[level])
        _close(res[level], {k: getattr(m, k) for k in ("top1", "top5", "top10", "mAP")})
        assert (res[level]["probes"], res[level]["gallery"]) == (m.probes, m.gallery)
    assert res["standard"] is True and res["window"]["gallery"] == 2 * res["sequence"]["gallery"]


def test_test_idx_that_leaves_records_out(casia_like: Path):
    from vid2reid.store import read_manifest

    records = read_manifest(casia_like)
    test = eval_records(records, "simmc")
    subset = np.array([i for i in test if records[i].subject != "064"])
    for probe, gallery in (("nm", "nm"), ("bg", "nm"), ("cl", "cl")):
        sel = select_probe_gallery(records, subset, "simmc", probe, gallery)
        chosen = set(sel.probe) | set(sel.gallery)
        assert chosen <= set(subset.tolist())
        assert "064" not in {records[i].subject for i in chosen}
        full = select_probe_gallery(records, test, "simmc", probe, gallery)
        assert sorted(sel.probe) == sorted(i for i in full.probe if i in set(subset.tolist()))


def test_casia_subject_numbers_split_train_and_eval_end_to_end(casia_like: Path,
                                                                 tmp_path: Path, one_thread):
    import json

    from vid2reid.settings import make_config
    from vid2reid.train import train
    from vid2reid.data import training_sequences

    for proto, last in (("simmc", 62), ("opengait", 74)):
        cfg = make_config("casia-b", protocol=proto, f=F, x=5, eps=0.5, batch_size=64,
                          hidden=32, epochs=1)
        _, records, _ = training_sequences(casia_like, cfg)
        with open(casia_like / "manifest.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert all(r["split"] == "" for r in rows)  # no split column values: numbers decide
        assert [r.path for r in records] == [r["path"] for r in rows if int(r["subject"]) <= last]
        run = tmp_path / proto
        train(cfg, casia_like, run, progress=False)
        assert json.loads((run / "config.json").read_text())["train_sequences"] == len(records)
        res = evaluate(casia_like, run_dir=run, probe="Bags", gallery="Normal", protocol=proto)
        subjects = {r["subject"] for r in rows if int(r["subject"]) > last}
        assert subjects == ({"063", "064", "065", "070", "075"} if proto == "simmc" else {"075"})
        gallery_walks = 6 if proto == "simmc" else 4  # opengait: nm-01..04
        seq = res["sequence"]
        assert seq["probes"] + seq["no_match"] == 2 * 2 * len(subjects)  # bg walks x views
        assert seq["gallery"] == gallery_walks * 2 * len(subjects)
        assert res["window"]["gallery"] == 2 * seq["gallery"]  # two windows per walk


@pytest.mark.parametrize("protocol", ["simmc", "opengait", "all"])
def test_probe_and_gallery_videos_are_disjoint_in_every_setting(three_views: Path, protocol):
    from vid2reid.errors import ProtocolError
    from vid2reid.store import read_manifest

    records = read_manifest(three_views) + [
        Record("077", "AR", f"{k:02d}", "090", f"x{k}.npz", 50) for k in (1, 2, 3)]
    conditions = ("nm", "Normal", "bg", "AR")
    if protocol == "all":
        test = np.arange(len(records))
    else:
        test = eval_records(records, protocol)
    tried = 0
    for probe in conditions:
        for gallery in conditions:
            try:
                sel = select_probe_gallery(records, test, protocol, probe, gallery)
            except ProtocolError:
                continue
            tried += 1
            p = {records[i].video_key for i in sel.probe}
            g = {records[i].video_key for i in sel.gallery}
            assert p and g and not p & g, (protocol, probe, gallery)
    assert tried >= (4 if protocol == "opengait" else 12)
    # and the items evaluate() ranks: no probe video among the gallery videos
    for probe, gallery in (("Normal", "Normal"), ("Bags", "Normal")):
        res = evaluate(three_views, baseline="raw", probe=probe, gallery=gallery, f=F,
                       protocol=protocol, keep_features=True)
        for level in ("window", "sequence"):
            items = res["features"][level]
            assert not set(items["probe"]["video"]) & set(items["gallery"]["video"])
