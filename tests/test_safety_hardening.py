"""Issue 36: no user file replaced, no silent wrong answer, every read inside its folder, every OS
error one line. One test (or a parametrised few) per finding of the review; each failed on the
code before the fix.

Read-only folders and a full disk: the tests run as root, and chmod does not stop root. So the
OS boundary is simulated: ``os.open``/``os.mkdir`` (read-only) or ``os.fsync`` (full disk) are
replaced by functions that raise the very OSError the kernel raises (EROFS, ENOSPC) for paths
under one folder and call the real function otherwise; everything above them is the real
code. A path under a regular file (ENOTDIR) needs no simulation at all.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from test_safety import TRAIN, cli, one_error, pose_store, raw_eval, run, store, tree  # noqa: F401
from vid2reid import safepath
from vid2reid.errors import RunError
from vid2reid.gallery_index import load_index
from vid2reid.runfile import load_run_file, save_run_file
from vid2reid.store import read_manifest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_VIDEO = REPO / "sample_videos" / "075-nm-01-090.avi"
ARRAYS = ("features", "window_features", "window_walk", "window_start")  # an index's arrays


def user_folder(path: Path) -> dict[str, str]:
    """A folder of the user's own files where a page could land; its tree."""
    (path / "thumbs").mkdir(parents=True)
    (path / "walks").mkdir()
    (path / "index.html").write_text("<p>my thesis notes</p>")
    (path / "thumbs" / "q0000.jpg").write_bytes(b"my photo")
    (path / "walks" / "0.png").write_bytes(b"my drawing")
    return tree(path)


@pytest.fixture(scope="module")
def index_file(run: Path, store: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index") / "gallery.idx"
    res = cli("index", "--run", run, "--data", store, "--out", out, "--split", "test")
    assert res.exit_code == 0, res.output
    return out


# ---------------------------------------------------------------------------
# 1, 2, 9: one output rule; --force

def _report_cmd(which: str, run: Path, store: Path, report: Path, tmp_path: Path) -> list:
    return {"eval": ["eval", "--run", run, "--data", store, "--probe", "bg", "--gallery", "nm",
                     "--report", report],
            "match": ["match", store, "--gallery", store, "--run", run, "--top", "1",
                      "--query-condition", "bg", "--query-split", "test", "--report", report],
            "group": ["group", "--run", run, "--data", store, "--no-progress",
                      "--out", tmp_path / "people.csv", "--report", report]}[which]


@pytest.mark.parametrize("which", ["eval", "match", "group"])
def test_1_report_into_a_folder_of_the_users_files_needs_force(which: str, run: Path,
                                                                store: Path, tmp_path: Path):
    report = tmp_path / "D"
    before = user_folder(report)
    line = one_error(cli(*_report_cmd(which, run, store, report, tmp_path)))
    assert str(report) in line and "--force" in line and "--report" in line
    assert tree(report) == before  # nothing replaced, nothing added
    res = cli(*_report_cmd(which, run, store, report, tmp_path), "--force")
    assert res.exit_code == 0, res.output
    assert "my thesis notes" not in (report / "index.html").read_text()
    again = cli(*_report_cmd(which, run, store, report, tmp_path))  # its own page: no --force
    assert again.exit_code == 0, again.output


def test_1_other_outputs_of_the_users_are_refused(run: Path, store: Path, tmp_path: Path):
    mine = tmp_path / "mine.csv"
    mine.write_text("my,own,table\n1,2,3\n")
    line = one_error(cli("match", store, "--gallery", store, "--run", run, "--top", "1",
                         "--query-condition", "bg", "--csv", mine))
    assert str(mine) in line and "--csv" in line
    line = one_error(cli("group", "--run", run, "--data", store, "--out", mine, "--no-progress"))
    assert str(mine) in line and "--out" in line
    line = one_error(cli("eval", "--baseline", "raw", "--f", "4", "--data", store, "--probe",
                         "bg", "--gallery", "nm", "--json", mine))
    assert str(mine) in line and "--json" in line
    assert mine.read_text() == "my,own,table\n1,2,3\n"


def test_1_own_outputs_are_replaced_without_force(run: Path, store: Path, tmp_path: Path):
    """The rule recognises what vid2reid wrote: re-running a command needs no --force."""
    m = ["match", store, "--gallery", store, "--run", run, "--top", "1", "--query-condition",
         "bg", "--csv", tmp_path / "m.csv", "--json", tmp_path / "m.json"]
    e = ["eval", "--baseline", "raw", "--f", "4", "--data", store, "--probe", "bg", "--gallery",
         "nm", "--json", tmp_path / "e.json"]
    g = ["group", "--run", run, "--data", store, "--no-progress", "--out", tmp_path / "p.csv"]
    for args in (m, e, g, m, e, g):
        res = cli(*args)
        assert res.exit_code == 0, res.output


def test_2_index_out_never_replaces_a_file_that_is_not_an_index(run: Path, store: Path,
                                                                 tmp_path: Path,
                                                                 index_file: Path):
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("chapter 1")
    line = one_error(cli("index", "--run", run, "--data", store, "--out", thesis))
    assert str(thesis) in line and "--force" in line
    assert thesis.read_text() == "chapter 1"
    own = tmp_path / "own.idx"
    shutil.copy(index_file, own)
    res = cli("index", "--run", run, "--data", store, "--out", own, "--split", "test")
    assert res.exit_code == 0, res.output  # an index file is vid2reid's: replaced
    res = cli("index", "--run", run, "--data", store, "--out", thesis, "--force")
    assert res.exit_code == 0, res.output
    assert len(load_index(thesis).walks) > 0


def test_9_a_users_latest_is_left_alone(store: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "LATEST").write_text("buy milk\n")  # small, one line: what used to be overwritten
    assert safepath.runs_folder(runs / "r1") is None
    res = cli("train", "--data", store, "--out", runs / "r1", *TRAIN)
    assert res.exit_code == 0, res.output
    assert (runs / "LATEST").read_text() == "buy milk\n"
    assert "LATEST" in res.output and "--force" in res.output  # said, not silent
    # vid2reid's own LATEST (naming a run beside it) is still updated
    res = cli("train", "--data", store, "--out", runs / "r2", *TRAIN, "--force")
    assert res.exit_code == 0, res.output
    assert (runs / "LATEST").read_text() == "r2\n"  # --force: replaced
    (runs / "LATEST").write_text("r1\n")
    assert safepath.runs_folder(runs / "r3") == runs
    (runs / "r1-copy").mkdir()
    assert safepath.latest_is_ours(runs)


# ---------------------------------------------------------------------------
# 3: a diverged run is an error, never a score

def test_3_training_stops_when_the_loss_stops_being_finite(store: Path, tmp_path: Path):
    out = tmp_path / "runs" / "diverged"
    line = one_error(cli("train", "--data", store, "--out", out, *TRAIN, "--lr", "1e12"))
    assert "epoch 1" in line and "--lr" in line and "diverged" in line
    assert not (out / "model.pt").exists() and not (out / "checkpoint.pt").exists()
    assert not (tmp_path / "runs" / "LATEST").exists()


@pytest.fixture(scope="module")
def nan_run(run: Path, tmp_path_factory) -> Path:
    """The trained run with one weight NaN (what --lr 1e12 left behind before the fix)."""
    bad = tmp_path_factory.mktemp("nan") / "runs" / "nan"
    shutil.copytree(run, bad)
    obj = load_run_file(bad / "model.pt")
    name = next(k for k, v in obj["model"].items() if v.is_floating_point())
    obj["model"][name].view(-1)[0] = float("nan")
    save_run_file(bad / "model.pt", obj)
    return bad


@pytest.mark.parametrize("which", ["eval", "index", "match", "group"])
def test_3_commands_refuse_a_run_with_nan_weights(which: str, nan_run: Path, store: Path,
                                                  tmp_path: Path):
    args = {"eval": ["eval", "--run", nan_run, "--data", store, "--probe", "bg",
                     "--gallery", "nm"],
            "index": ["index", "--run", nan_run, "--data", store, "--out", tmp_path / "g.idx"],
            "match": ["match", store, "--gallery", store, "--run", nan_run, "--top", "1"],
            "group": ["group", "--run", nan_run, "--data", store, "--no-progress",
                      "--out", tmp_path / "people.csv"]}[which]
    line = one_error(cli(*args))
    assert "model.pt" in line and "NaN" in line and "--lr" in line
    assert not (tmp_path / "g.idx").exists() and not (tmp_path / "people.csv").exists()


def test_3_features_that_are_not_finite_are_refused(run: Path, tmp_path: Path):
    """Finite weights so large that the features overflow: the embedder refuses them."""
    from vid2reid.run import open_run

    big = tmp_path / "big"
    shutil.copytree(run, big)
    obj = load_run_file(big / "model.pt")
    for v in obj["model"].values():
        if v.is_floating_point():
            v.fill_(1e30)
    save_run_file(big / "model.pt", obj)
    x = np.random.default_rng(0).normal(size=(3, 20, 17, 3)).astype(np.float32)
    with pytest.raises(RunError, match="NaN or infinite features"):
        open_run(big).embedder().windows(x)


# ---------------------------------------------------------------------------
# 4: a tampered index is refused, one line per problem

def _tamper(src: Path, dst: Path, edit) -> Path:
    with np.load(src, allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        arrays = {k: np.array(data[k]) for k in ARRAYS}
    edit(meta, arrays)
    with open(dst, "wb") as fh:
        np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    return dst


def _nan_all(m, a):
    a["features"][:] = np.nan


def _nan_row(m, a):
    a["features"][3] = np.nan


def _cut(m, a):
    a["features"] = a["features"][:5]


def _reverse(m, a):
    a["features"] = a["features"][::-1].copy()


def _reverse_meta(m, a):
    m["subjects"] = m["subjects"][::-1]


def _no_identity(m, a):
    del m["run_identity"]


def _f_six(m, a):
    m["f"] = "six"


def _short_paths(m, a):
    m["paths"] = m["paths"][:-1]


def _window_walk(m, a):
    a["window_walk"][0] = 10_000


def _other_store(m, a):
    m["rows"][0]["store"] = "/etc"
    m["rows"][0]["path"] = "passwd"


@pytest.mark.parametrize("edit, said", [
    (_nan_all, "rows of features hold NaN"),
    (_nan_row, "1 of"),
    (_cut, "features has 5 rows for 9 walks"),
    (_reverse, "does not match its digest"),
    (_reverse_meta, "does not match its digest"),
    (_no_identity, "field 'run_identity' is missing"),
    (_f_six, "field 'f' must be a whole number >= 0, got 'six'"),
    (_short_paths, "entries for"),
    (_window_walk, "window_walk holds walk numbers outside"),
    (_other_store, "row 0 names another store"),
])
def test_4_a_tampered_index_is_refused_in_one_line(edit, said: str, index_file: Path,
                                                   store: Path, run: Path, tmp_path: Path):
    bad = _tamper(index_file, tmp_path / "bad.idx", edit)
    line = one_error(cli("match", store, "--gallery", bad, "--run", run, "--top", "1"))
    assert str(bad) in line and said in line, line


def test_4_an_untouched_index_still_loads(index_file: Path, tmp_path: Path):
    same = _tamper(index_file, tmp_path / "same.idx", lambda m, a: None)
    assert len(load_index(same).walks) == len(load_index(index_file).walks)


# ---------------------------------------------------------------------------
# 5: pages read only inside the store (or the queries named)

def test_5_a_manifest_source_outside_the_store_is_not_read(tmp_path: Path, monkeypatch):
    import vid2reid.match_report as mr

    opened: list[str] = []
    real = mr.cv2.VideoCapture
    monkeypatch.setattr(mr.cv2, "VideoCapture", lambda p: opened.append(str(p)) or real(p))
    outside = tmp_path / "private" / "holiday.avi"
    outside.parent.mkdir()
    shutil.copy(SAMPLE_VIDEO, outside)
    s = pose_store(tmp_path / "s", [("001", "nm", "01", 1.0)])
    rec = read_manifest(s)[0]
    for source in (str(outside), "../private/holiday.avi"):
        row = {**rec.row(), "store": str(s), "source": source, "start_frame": "0"}
        _, kind = mr.walk_strip(row)
        assert kind == "skeleton" and opened == [], (source, opened)
    inside = s / "videos" / "clip.avi"  # the same video inside the store is shown
    inside.parent.mkdir()
    shutil.copy(SAMPLE_VIDEO, inside)
    _, kind = mr.walk_strip({**rec.row(), "store": str(s), "source": "videos/clip.avi",
                             "start_frame": "0"})
    assert kind == "video+3d" and opened == [str(inside)]


def test_5_match_page_reads_a_gallery_video_only_where_the_user_said(run: Path, tmp_path: Path,
                                                                     monkeypatch):
    """A manifest naming a video outside its store: match --report does not open it, unless
    the user names its folder with --videos."""
    import vid2reid.match_report as mr
    from test_safety import pose
    from vid2reid.store import save_sequence, write_manifest

    private = tmp_path / "private"
    private.mkdir()
    shutil.copy(SAMPLE_VIDEO, private / "clip.avi")
    s = tmp_path / "s"
    recs = [save_sequence(s, f"{sub}/{c}.npz", pose(v, 40) + np.linspace(0, 1, 40)[:, None, None],
                          "h36m-17", subject=sub, condition=c, sequence="01", view="",
                          split="test", source=str(private / "clip.avi"), start_frame=0)
            for sub, c, v in (("001", "nm", 1.0), ("001", "bg", 1.1), ("002", "nm", 3.0),
                              ("002", "bg", 3.1))]
    write_manifest(s, recs)
    opened: list[str] = []
    real = mr.cv2.VideoCapture
    monkeypatch.setattr(mr.cv2, "VideoCapture", lambda p: opened.append(str(p)) or real(p))
    args = ["match", s, "--gallery", s, "--run", run, "--top", "1", "--query-condition", "bg",
            "--gallery-condition", "nm"]
    res = cli(*args, "--report", tmp_path / "page")
    assert res.exit_code == 0, res.output
    assert opened == [] and "outside the store" in res.output and "--videos" in res.output
    res = cli(*args, "--report", tmp_path / "page2", "--videos", private)
    assert res.exit_code == 0, res.output
    assert opened and all(p == str(private / "clip.avi") for p in opened)


def test_5_an_index_row_path_out_of_its_store_is_not_read(tmp_path: Path):
    from vid2reid.match_report import walk_strip

    s = pose_store(tmp_path / "s", [("001", "nm", "01", 1.0)])
    other = pose_store(tmp_path / "other", [("002", "nm", "01", 2.0)])
    row = {**read_manifest(s)[0].row(), "store": str(s),
           "path": f"../other/{read_manifest(other)[0].path}"}
    _, kind = walk_strip(row)
    assert kind == "missing"


# ---------------------------------------------------------------------------
# 6: OS errors, NUL bytes, absurd sizes: one line naming the path, nothing half-written

def _read_only(monkeypatch, folder: Path, code: int = errno.EROFS) -> None:
    """Make ``folder`` behave as on a read-only file system (or, with ``code=EACCES``, as a
    folder this user may not write): creating or writing anything under it raises that OSError
    from the OS calls themselves (os.open, os.mkdir)."""
    root = str(folder.resolve())

    def under(path) -> bool:
        return os.path.abspath(os.fsdecode(path)).startswith(root)

    real_open, real_mkdir = os.open, os.mkdir

    def fake_open(path, flags, *args, **kw):
        if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_open(path, flags, *args, **kw)

    def fake_mkdir(path, *args, **kw):
        if under(path):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_mkdir(path, *args, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


@pytest.mark.parametrize("which", ["train", "index", "eval-report", "match-csv", "group"])
def test_6_read_only_out_is_one_line(which: str, run: Path, store: Path, tmp_path: Path,
                                     monkeypatch):
    ro = tmp_path / "ro"
    (ro / "D").mkdir(parents=True)
    before = tree(ro)
    args = {"train": ["train", "--data", store, "--out", ro / "new-run", *TRAIN],
            "index": ["index", "--run", run, "--data", store, "--out", ro / "g.idx"],
            "eval-report": ["eval", "--run", run, "--data", store, "--probe", "bg",
                            "--gallery", "nm", "--report", ro / "D"],
            "match-csv": ["match", store, "--gallery", store, "--run", run, "--top", "1",
                          "--query-condition", "bg", "--csv", ro / "m.csv"],
            "group": ["group", "--run", run, "--data", store, "--no-progress",
                      "--out", ro / "people.csv"]}[which]
    _read_only(monkeypatch, ro)
    line = one_error(cli(*args))
    monkeypatch.undo()
    assert str(ro) in line and ("read-only" in line.lower() or "Read-only" in line), line
    assert tree(ro) == before


@pytest.mark.parametrize("which", ["eval-json", "train"])
def test_6_no_permission_is_one_line(which: str, run: Path, store: Path, tmp_path: Path,
                                     monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    args = {"eval-json": ["eval", "--baseline", "raw", "--f", "4", "--data", store, "--probe",
                          "bg", "--gallery", "nm", "--json", locked / "m.json"],
            "train": ["train", "--data", store, "--out", locked / "r", *TRAIN]}[which]
    _read_only(monkeypatch, locked, errno.EACCES)
    line = one_error(cli(*args))
    monkeypatch.undo()
    assert str(locked) in line and "Permission denied" in line and "permissions" in line
    assert list(locked.iterdir()) == []


def test_6_out_under_a_regular_file_is_one_line(store: Path, tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    line = one_error(cli("train", "--data", store, "--out", tmp_path / "afile" / "run",
                         *TRAIN))
    assert str(tmp_path / "afile") in line


def test_6_full_disk_leaves_the_old_file_and_no_temp_file(run: Path, store: Path,
                                                          index_file: Path, tmp_path: Path,
                                                          monkeypatch):
    out = tmp_path / "g.idx"
    shutil.copy(index_file, out)
    before = tree(tmp_path)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    line = one_error(cli("index", "--run", run, "--data", store, "--out", out))
    monkeypatch.undo()
    assert str(out) in line and "No space left" in line and "free some disk space" in line
    assert tree(tmp_path) == before  # the old index intact, no .tmp left


def test_6_full_disk_during_training_is_one_line(store: Path, tmp_path: Path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    line = one_error(cli("train", "--data", store, "--out", tmp_path / "runs" / "r", *TRAIN))
    monkeypatch.undo()
    assert "No space left" in line
    assert not (tmp_path / "runs").exists()  # the folders it created are gone again


def test_6_nul_byte_in_a_manifest_path_is_one_line(tmp_path: Path):
    s = pose_store(tmp_path / "s", [(f"00{i}", c, "01", float(i)) for i in range(1, 4)
                                    for c in ("nm", "bg")])
    text = (s / "manifest.csv").read_text()
    first = read_manifest(s)[0].path
    (s / "manifest.csv").write_text(text.replace(first, first[:3] + "\0" + first[3:], 1))
    line = one_error(raw_eval(s, "--probe", "bg", "--gallery", "nm"))
    assert "NUL byte" in line and "manifest.csv" in line


@pytest.mark.parametrize("edit, said", [
    ({"hidden": 1_000_000_000}, "hidden must be <= 8192, got 1000000000"),
    ({"f": 10 ** 9}, "f must be <= 10000"),
    ({"num_joints": 10 ** 9}, "'num_joints' must be at most 1024"),
])
def test_6_absurd_sizes_in_a_hand_edited_config(edit: dict, said: str, run: Path, store: Path,
                                                tmp_path: Path):
    edited = tmp_path / "edited"
    shutil.copytree(run, edited)
    info = json.loads((edited / "config.json").read_text())
    info.update(edit)
    (edited / "config.json").write_text(json.dumps(info))
    line = one_error(cli("eval", "--run", edited, "--data", store, "--probe", "bg",
                         "--gallery", "nm"))
    assert "config.json" in line and said in line, line


# ---------------------------------------------------------------------------
# 7: spreadsheet formula injection

def test_7_spreadsheet_cells_are_neutralised_numbers_left_alone():
    from vid2reid.store import spreadsheet_cell

    assert spreadsheet_cell("=HYPERLINK(\"http://x\",\"y\")") == "'=HYPERLINK(\"http://x\",\"y\")"
    assert [spreadsheet_cell(v) for v in ("+1+cmd", "-2+3", "@SUM(A1)", "\tx")] == \
        ["'+1+cmd", "'-2+3", "'@SUM(A1)", "'\tx"]
    assert [spreadsheet_cell(v) for v in ("-0.25", "+3", "1e-3", 7, -1.5, "nm", "")] == \
        ["-0.25", "+3", "1e-3", 7, -1.5, "nm", ""]


def test_7_match_csv_does_not_carry_a_formula(tmp_path: Path):
    from vid2reid.match_report import CSV_COLUMNS, results_csv
    from vid2reid.search import Match, QueryResult

    row = {"subject": "001", "condition": "=HYPERLINK(\"http://evil\",\"x\")",
           "sequence": "@SUM(1)", "view": "-1+2", "path": "a.npz"}
    m = Match(rank=1, index=0, distance=0.5, path="=cmd|' /C calc'!A0", subject="001",
              row=row)
    res = QueryResult(path="q.npz", row={}, subject="001", matches=[m], margin=-0.125,
                      margin_to="002", excluded=0)
    cells = next(csv.DictReader(io.StringIO(results_csv([res]))))
    assert set(cells) == set(CSV_COLUMNS)
    assert all(not v.startswith(("=", "+", "@")) for v in cells.values())
    assert cells["gallery"].startswith("'=") and cells["gallery_condition"].startswith("'=")
    assert cells["gallery_view"] == "'-1+2"
    assert cells["distance"] == "0.5" and cells["margin"] == "-0.125"  # numbers as they were


def test_7_group_csv_does_not_carry_a_formula(tmp_path: Path):
    from types import SimpleNamespace

    from vid2reid.grouping import write_grouping_csv

    recs = [SimpleNamespace(path=p) for p in ("=1+1/a.npz", "-5/b.npz", "ok/c.npz")]
    assoc = SimpleNamespace(labels=np.array([0, 1, 0]), confidence=np.array([0.5, 1.0, 0.25]))
    out = write_grouping_csv(SimpleNamespace(records=recs, association=assoc), tmp_path / "p.csv")
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert [r[0] for r in rows[1:]] == ["'=1+1/a.npz", "'-5/b.npz", "ok/c.npz"]
    assert [r[1:] for r in rows[1:]] == [["0", "0.500"], ["1", "1.000"], ["0", "0.250"]]


# ---------------------------------------------------------------------------
# 8: a walk added by hand survives a re-import

def test_8_reimport_keeps_a_walk_added_by_hand(tmp_path: Path):
    from vid2reid.importers.generic import import_csv
    from vid2reid.store import save_sequence, write_manifest

    src = tmp_path / "mine"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(src / f"w{i}.npy", rng.normal(size=(20, 17, 3)).astype(np.float32))
    (src / "m.csv").write_text("file,subject,condition,split\n" + "".join(
        f"w{i}.npy,{i + 1},nm,\n" for i in range(3)))
    out = tmp_path / "store"
    import_csv(src, out, layout="h36m-17", mapping=src / "m.csv", progress=False)
    recs = read_manifest(out)
    hand = save_sequence(out, "hand/added.npz", rng.normal(size=(20, 17, 3)), "h36m-17",
                         subject="9", condition="nm", sequence="01", view="")
    write_manifest(out, recs + [hand])
    lines = (out / "manifest.csv").read_text().splitlines()
    header = lines[0].split(",")
    if "content_hash" in header:  # a row written by hand carries no content hash
        k = header.index("content_hash")
        lines = [lines[0]] + [",".join(c if j != k or "hand/" not in line else ""
                                       for j, c in enumerate(line.split(",")))
                              for line in lines[1:]]
        (out / "manifest.csv").write_text("\n".join(lines) + "\n")
    data = (out / "hand" / "added.npz").read_bytes()
    summary = import_csv(src, out, layout="h36m-17", mapping=src / "m.csv", progress=False)
    assert (out / "hand" / "added.npz").read_bytes() == data
    assert "hand/added.npz" in [r.path for r in read_manifest(out)]
    assert summary.removed_stale == 0 and any("added by hand" in n for n in summary.notes)
