"""Nothing outside --out is touched, nothing of the user's is lost, no walk is scored against itself.

One test (or a few) per problem of a hostile and careless-user review, each on files the test
writes, through the command line in this process (typer's runner) unless a library call is
the point. Oracles are built by hand: poses chosen so that the right answer is known, trees
hashed before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from test_importers import kgbd_set, kgbd_walk, skel_frame
from vid2reid.cli import app
from vid2reid.errors import StoreError
from vid2reid.importers.kinect import import_kgbd
from vid2reid.locks import claim_output
from vid2reid.store import (MAX_SEQUENCE_BYTES, check_size, load_joints, read_manifest,
                            save_sequence, write_manifest)
from vid2reid.synthetic import make_synthetic_store

runner = CliRunner()
J = 17  # h36m-17
TRAIN = ["--preset", "casia-b", "--f", "20", "--x", "5", "--eps", "0.5", "--batch-size", "64",
         "--hidden", "16", "--device", "cpu", "--threads", "1", "--no-progress", "--epochs", "1"]


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_error(res) -> str:
    """The command failed with one 'error:' line and no traceback; that line."""
    assert res.exit_code in (1, 2), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.output
    return errors[0]


def tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file and link under ``root`` (except under ``skip``) -> a hash of its content."""
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        for name in dirnames + files:
            p = Path(dirpath) / name
            if skip is not None and (p == skip or skip in p.parents):
                continue
            if p.is_symlink():
                out[str(p.relative_to(root))] = "-> " + os.readlink(p)
            elif p.is_file():
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def pose(value: float, frames: int = 8) -> np.ndarray:
    """A walk standing still: root at 0, every other joint at x = ``value``."""
    j = np.zeros((frames, J, 3), np.float32)
    j[:, 1:, 0] = value
    j[:, 1:, 1] = np.arange(1, J)  # a body shape every subject shares
    return j


def pose_store(root: Path, walks: list[tuple[str, str, str, float]]) -> Path:
    """A store of still walks (subject, condition, sequence, x value), all split test."""
    recs = [save_sequence(root, f"{s}/{c}-{q}.npz", pose(v), "h36m-17", subject=s, condition=c,
                          sequence=q, view="", split="test") for s, c, q, v in walks]
    write_manifest(root, recs)
    return root


def raw_eval(data: Path, *extra: object):
    return cli("eval", "--baseline", "raw", "--f", "4", "--data", data, "--probe", "probe",
               "--gallery", "gallery", "--json", data.parent / f"{data.name}-metrics.json",
               *extra)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("safety") / "s", n_subjects=6,
                                walks={"nm": 2, "bg": 1}, frames=(40, 50), seed=2)


@pytest.fixture(scope="module")
def run(store: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("safety-run") / "runs" / "r1"
    res = cli("train", "--data", store, "--out", out, *TRAIN)
    assert res.exit_code == 0, res.output
    return out


# ---------------------------------------------------------------------------
# 1-5: data loss and writes outside the output folder

@pytest.mark.parametrize("bad", ["../../outside/secret.npz", "ABSOLUTE"])
def test_1_convert_never_writes_outside_out(store: Path, tmp_path: Path, bad: str):
    secret = tmp_path / "outside" / "secret.npz"
    secret.parent.mkdir()
    secret.write_bytes(b"the user's own file")
    src = tmp_path / "a" / "src"
    shutil.copytree(store, src)
    recs = read_manifest(src)
    (src / "deep").mkdir()
    shutil.copy(src / recs[0].path, src / "deep" / "x.npz")
    lines = (src / "manifest.csv").read_text().splitlines()
    lines[1] = lines[1].replace(recs[0].path, str(secret) if bad == "ABSOLUTE" else bad)
    (src / "manifest.csv").write_text("\n".join(lines) + "\n")
    before = tree(tmp_path, skip=tmp_path / "out")
    line = one_error(cli("convert", src, "--layout", "coco-17", "--out", tmp_path / "out"))
    assert "manifest.csv:2" in line and ("absolute" in line or "'..'" in line)
    assert secret.read_bytes() == b"the user's own file"
    assert tree(tmp_path, skip=tmp_path / "out") == before


def test_2_import_refuses_another_store_and_never_deletes_its_files(store: Path, tmp_path: Path):
    conv = tmp_path / "conv"
    assert cli("convert", store, "--layout", "coco-17", "--out", conv).exit_code == 0
    src = kgbd_set(tmp_path / "Data", {"Person001": 3, "Person002": 3})
    before = tree(conv)
    line = one_error(cli("import", "kgbd", src, "--out", conv, "--no-progress"))
    assert str(conv) in line and "'vid2reid convert'" in line and "--force" in line
    assert tree(conv) == before
    forced = cli("import", "kgbd", src, "--out", conv, "--no-progress", "--force")
    assert forced.exit_code == 0, forced.output
    assert "removed" not in forced.output
    after = tree(conv)
    npz = [k for k in before if k.endswith(".npz")]
    assert npz and all(after.get(k) == before[k] for k in npz)  # convert's files all kept
    assert {r.subject for r in read_manifest(conv)} == {"Person001", "Person002"}


def test_3_csv_mapping_cannot_reach_out_of_src(tmp_path: Path):
    src = tmp_path / "mysrc"
    src.mkdir()
    np.save(src / "w0.npy", pose(1.0, 20))
    user = src / "w0.npz"
    user.write_bytes(b"the user's file")
    (src / "mapping.csv").write_text("file,subject,condition,split\n../mysrc/w0.npy,1,nm,train\n")
    before = tree(tmp_path, skip=tmp_path / "out")
    line = one_error(cli("import", "csv", src, "--out", tmp_path / "out", "--layout", "h36m-17",
                         "--no-progress"))
    assert f"{src / 'mapping.csv'}:2" in line and "'..'" in line
    assert user.read_bytes() == b"the user's file"
    assert tree(tmp_path, skip=tmp_path / "out") == before


def test_4_train_refuses_a_folder_that_is_not_a_run(store: Path, tmp_path: Path):
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}\n')
    (mine / "model.pt").write_bytes(b"my model")
    before = tree(tmp_path)
    line = one_error(cli("train", "--data", store, "--out", mine, *TRAIN))
    assert str(mine) in line and "not a training run" in line and "--force" in line
    assert tree(tmp_path) == before
    # a store is not a run either
    copy = tmp_path / "store_copy"
    shutil.copytree(store, copy)
    before = tree(tmp_path)
    line = one_error(cli("train", "--data", store, "--out", copy, *TRAIN))
    assert "a store written by 'vid2reid import'" in line or "skeleton store" in line
    assert tree(tmp_path) == before


def test_4_latest_only_in_a_folder_of_runs(store: Path, tmp_path: Path):
    # next to a store and a user's file: the run is written, LATEST is not
    shutil.copytree(store, tmp_path / "store_copy")
    (tmp_path / "notes.txt").write_text("mine\n")
    res = cli("train", "--data", store, "--out", tmp_path / "r", *TRAIN)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "model.pt").is_file() and not (tmp_path / "LATEST").exists()
    assert "no LATEST" in res.output
    # in a folder that holds only runs (or that the command creates): LATEST names the run
    res = cli("train", "--data", store, "--out", tmp_path / "runs" / "a", *TRAIN)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "runs" / "LATEST").read_text() == "a\n"
    shutil.rmtree(tmp_path / "runs" / "a")  # a runs folder holding a user's file is still one
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "x.txt").write_text("x")
    res = cli("train", "--data", store, "--out", tmp_path / "runs" / "c", *TRAIN)
    assert res.exit_code == 0 and (tmp_path / "runs" / "LATEST").read_text() == "c\n"


def test_4_convert_refuses_a_folder_that_is_not_a_store(store: Path, tmp_path: Path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "manifest.txt").write_text("mine")
    before = tree(tmp_path)
    line = one_error(cli("convert", store, "--layout", "coco-17", "--out", mine))
    assert "files that are not vid2reid's" in line
    assert tree(tmp_path) == before


def test_4_5_second_writer_is_refused_and_deletes_nothing(store: Path, tmp_path: Path):
    out = tmp_path / "run"
    with claim_output(out, "run"):  # another training run holds the folder
        (out / "train.log").write_text("the other run's log\n")
        before = tree(tmp_path)
        line = one_error(cli("train", "--data", store, "--out", out, *TRAIN))
        assert f"pid {os.getpid()}" in line and "being written" in line
        assert tree(tmp_path) == before  # the failing run deleted nothing of the other's
        # the same for a store being imported or converted
        line = one_error(cli("convert", store, "--layout", "coco-17", "--out", out, "--force"))
        assert "being written" in line
    # a holder that died leaves its note in the lock file but no lock: the next run proceeds
    assert json.loads((out / ".vid2reid.lock").read_text())["pid"] == os.getpid()
    res = cli("train", "--data", store, "--out", out, *TRAIN)
    assert res.exit_code == 0, res.output
    assert len((out / "log.jsonl").read_text().splitlines()) == 1


def test_4_failed_run_removes_only_its_own_new_folder(tmp_path: Path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.csv").write_text("subject,condition,sequence,view,path,frames\n")
    res = cli("train", "--data", bad, "--out", tmp_path / "runs" / "new", *TRAIN)
    one_error(res)
    assert not (tmp_path / "runs" / "new").exists()


def test_5_resume_checks_the_data_is_the_same(store: Path, tmp_path: Path):
    out = tmp_path / "runs" / "r"
    assert cli("train", "--data", store, "--out", out, *TRAIN).exit_code == 0
    other = make_synthetic_store(tmp_path / "other", n_subjects=6, walks={"nm": 2, "bg": 1},
                                 frames=(40, 50), seed=9)  # same layout, other walks
    bookkeeping = (".vid2reid.lock", "train.log")  # the lock names its holder; the log grows
    before = {k: v for k, v in tree(out).items() if k not in bookkeeping}
    line = one_error(cli("train", "--data", other, "--out", out, *TRAIN[:-1], "2"))
    assert "trained on other data" in line and "--no-resume" in line
    assert {k: v for k, v in tree(out).items() if k not in bookkeeping} == before
    res = cli("train", "--data", store, "--out", out, *TRAIN[:-1], "2")
    assert res.exit_code == 0, res.output
    assert "same training data" in (out / "train.log").read_text()
    cfg = json.loads((out / "config.json").read_text())
    assert len(cfg["data_hash"]) == 64


# ---------------------------------------------------------------------------
# 6: reads outside the store or SRC

@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_6_store_reads_only_inside(store: Path, tmp_path: Path, how: str):
    src = tmp_path / "s"
    shutil.copytree(store, src)
    recs = read_manifest(src)
    outside = tmp_path / "elsewhere.npz"
    shutil.copy(src / recs[1].path, outside)
    if how == "symlink":
        (src / recs[0].path).unlink()
        (src / recs[0].path).symlink_to(outside)
        target = recs[0].path
    else:
        target = str(outside) if how == "absolute" else "../elsewhere.npz"
        text = (src / "manifest.csv").read_text().replace(recs[0].path, target, 1)
        (src / "manifest.csv").write_text(text)
    before = tree(tmp_path, skip=tmp_path / "out")
    for res in (cli("eval", "--baseline", "raw", "--f", "20", "--data", src, "--probe", "bg",
                    "--gallery", "nm"),
                cli("train", "--data", src, "--out", tmp_path / "out" / "r", *TRAIN),
                cli("convert", src, "--layout", "coco-17", "--out", tmp_path / "out" / "c")):
        line = one_error(res)
        assert "manifest.csv:2" in line and target in line
    assert tree(tmp_path, skip=tmp_path / "out") == before


def test_6_importer_does_not_follow_links_out_of_src(tmp_path: Path):
    src = kgbd_set(tmp_path / "Data", {"Person001": 3})
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (src / "Person001" / "4.txt").symlink_to(secret)
    res = cli("import", "kgbd", src, "--out", tmp_path / "out", "--trim", "0", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "root:x" not in res.output
    assert "Person001/4.txt: a symbolic link to a file outside" in res.output
    assert len(read_manifest(tmp_path / "out")) == 3


# ---------------------------------------------------------------------------
# 7-8: no walk scored against itself; zero scorable probes

def test_7_identical_joints_under_another_name_are_not_a_match(tmp_path: Path):
    walks = []
    for s in range(1, 5):
        walks += [(f"{s}", "probe", "01", s),  # probe
                  (f"{s}", "gallery", "02", s),  # the same recording listed again
                  (f"{s}", "gallery", "03", s + 100.0)]  # a real other walk, far away
    store = pose_store(tmp_path / "s", walks)
    res = raw_eval(store)
    assert res.exit_code == 0, res.output
    # with its copy excluded, each probe's nearest items are other subjects' copies
    m = json.loads((tmp_path / "s-metrics.json").read_text())
    assert m["sequence"]["top1"] == 0.0 and m["window"]["top1"] == 0.0
    assert m["sequence"]["probes"] == 4 and m["sequence"]["no_match"] == 0
    assert m["identical_pairs"] == 4
    assert any("4 probe/gallery pair(s) of sequences with identical joints" in n
               and "4 of them under other names" in n for n in m["setting_notes"])


def test_7_gallery_store_with_the_same_walks_under_another_split(tmp_path: Path):
    a, b = [], []
    for s in range(1, 5):
        a += [(f"{s}", "probe", "01", s), (f"{s}", "gallery", "02", s + 100.0)]
        # the same two walks with the roles drawn the other way, and a third walk
        b += [(f"{s}", "gallery", "01", s), (f"{s}", "probe", "02", s + 100.0),
              (f"{s}", "gallery", "03", s + 50.0)]
    sa, sb = pose_store(tmp_path / "a", a), pose_store(tmp_path / "b", b)
    res = raw_eval(sa, "--gallery-data", sb)
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "a-metrics.json").read_text())
    assert m["sequence"]["top1"] == 0.0 and m["sequence"]["probes"] == 4
    assert any("4 probe/gallery pair(s)" in n for n in m["setting_notes"])


def test_8_zero_scorable_probes_is_an_error_that_says_why(tmp_path: Path):
    # as in a KGBD store: one probe walk per person, walk numbers differing between people;
    # '--probe probe --gallery probe' then puts other people's probe walks in the gallery
    store = pose_store(tmp_path / "s", [(f"{s}", c, f"{q + s}", s + 10 * k) for s in range(1, 5)
                                        for k, (c, q) in enumerate([("probe", 0),
                                                                    ("gallery", 10)])])
    line = one_error(raw_eval(store, "--gallery", "probe"))
    assert "no probe can be scored at window level" in line and "holds none of the probes'" in line
    # a gallery that holds nothing but the probes themselves, under other names
    copies = pose_store(tmp_path / "c", [(f"{s}", c, f"{s + k}", s + 500 * k) for s in range(1, 5)
                                         for k, c in enumerate(["gallery", "probe"])])
    line = one_error(raw_eval(store, "--gallery-data", copies))
    assert "no probe can be scored" in line and "that probe's own recording" in line


# ---------------------------------------------------------------------------
# 9-10: accepted without a word, or a traceback

def test_9_duplicated_rows_and_odd_joints(tmp_path: Path):
    store = pose_store(tmp_path / "s", [("1", "probe", "01", 1), ("1", "gallery", "02", 2)])
    text = (store / "manifest.csv").read_text()
    lines = text.splitlines()
    (store / "manifest.csv").write_text(text + lines[1] + "\n")
    line = one_error(raw_eval(store))
    assert "manifest.csv:4" in line and "listed twice (also on line 2)" in line
    for dtype, said in ((np.complex64, "complex64"), (bool, "bool")):
        odd = pose_store(tmp_path / f"s-{said}", [("1", "probe", "01", 1), ("1", "gallery", "02", 2)])
        np.savez(odd / "1/probe-01.npz", joints=pose(1.0).astype(dtype), layout=np.array("h36m-17"))
        line = one_error(raw_eval(odd))
        assert "1/probe-01.npz" in line and f"of type {said}, not real numbers" in line


def test_9_layout_contradicting_the_files(tmp_path: Path):
    store = pose_store(tmp_path / "s", [("1", "probe", "01", 1), ("1", "gallery", "02", 2)])
    text = (store / "manifest.csv").read_text().replace("h36m-17", "kinect-v1-20")
    (store / "manifest.csv").write_text(text)
    line = one_error(raw_eval(store))
    assert "the manifest says layout 'kinect-v1-20', the file says 'h36m-17'" in line


def test_9_two_mapping_rows_reaching_one_file(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "w0.npy", pose(1.0, 20))
    (src / "alias.npy").symlink_to(src / "w0.npy")
    (src / "mapping.csv").write_text("file,subject,condition,split\nw0.npy,1,nm,train\n"
                                     "alias.npy,2,nm,train\n")
    line = one_error(cli("import", "csv", src, "--out", tmp_path / "out", "--layout", "h36m-17"))
    assert "mapping.csv:3" in line and "same file as 'w0.npy' on line 2" in line


@pytest.mark.parametrize("which", ["manifest", "mapping"])
@pytest.mark.parametrize("problem", ["latin1", "bom", "huge-field", "short-row"])
def test_10_csv_files_that_crashed(tmp_path: Path, which: str, problem: str):
    store = pose_store(tmp_path / "s", [(f"{s}", c, q, s + k) for s in range(1, 3)
                                        for k, (c, q) in enumerate([("probe", "01"),
                                                                    ("gallery", "02")])])
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "w0.npy", pose(1.0, 20))
    np.save(src / "w1.npy", pose(2.0, 20))
    (src / "mapping.csv").write_text("file,subject,condition,split\nw0.npy,1,nm,train\n"
                                     "w1.npy,2,nm,train\n")
    path = store / "manifest.csv" if which == "manifest" else src / "mapping.csv"
    data = path.read_bytes()
    lines = data.split(b"\n")
    if problem == "latin1":
        lines[1] = lines[1].replace(b"1", "\u00e9".encode("latin-1"), 1)
    elif problem == "bom":
        lines[0] = b"\xef\xbb\xbf" + lines[0]
    elif problem == "huge-field":
        lines[1] = lines[1] + b"," + b"x" * (200 << 10)
        lines[0] = lines[0] + b",note"
    else:
        lines[1] = b",".join(lines[1].split(b",")[:3])
    path.write_bytes(b"\n".join(lines))
    res = raw_eval(store) if which == "manifest" else \
        cli("import", "csv", src, "--out", tmp_path / "out", "--layout", "h36m-17", "--no-progress",
            "--keep-zero-joints")
    if problem == "bom":  # a byte-order mark is fine
        assert res.exit_code == 0, res.output
        return
    line = one_error(res)
    assert f"{path}:2" in line
    assert {"latin1": "not UTF-8", "huge-field": "not a valid CSV row",
            "short-row": "3 field(s), but the header has"}[problem] in line


# ---------------------------------------------------------------------------
# 11: hand-edited or mismatched run files

@pytest.mark.parametrize("edit, said", [
    ({"hidden": "abc"}, "'hidden' must be an integer, got 'abc'"),
    ({"num_joints": "twenty"}, "'num_joints' must be a positive integer, got 'twenty'"),
    ({"num_joints": None}, "'num_joints' must be a positive integer"),
    ({"method": ["simmc"]}, "'method' must be a string, got ['simmc']"),
    ("[1, 2]", "not a run's settings (a JSON array, not an object)"),
    ("null", "not a run's settings (a JSON null, not an object)"),
    ({"num_joints": 20}, "model.pt: does not fit the model its config.json describes"),
])
def test_11_hand_edited_run_config(run: Path, store: Path, tmp_path: Path, edit, said: str):
    copy = tmp_path / "r"
    shutil.copytree(run, copy)
    if isinstance(edit, str):
        (copy / "config.json").write_text(edit)
    else:
        info = json.loads((copy / "config.json").read_text())
        info.update(edit)
        info = {k: v for k, v in info.items() if v is not None}
        (copy / "config.json").write_text(json.dumps(info))
    line = one_error(cli("eval", "--run", copy, "--data", store))
    assert said in line and str(copy) in line


def test_11_log_line_that_is_not_an_object(run: Path, store: Path, tmp_path: Path):
    copy = tmp_path / "r"
    shutil.copytree(run, copy)
    (copy / "log.jsonl").write_text("[1, 2]\n")
    res = cli("eval", "--run", copy, "--data", store, "--probe", "bg", "--gallery", "nm")
    assert res.exit_code == 0, res.output


# ---------------------------------------------------------------------------
# 12-14: names, misleading messages, one bad file

def test_12_superscript_digits_in_names(tmp_path: Path):
    kgbd_walk(tmp_path / "K" / "Person001" / "\u00b2.txt", 30)
    kgbd_walk(tmp_path / "K" / "Person001" / "1.txt", 30)
    res = cli("import", "kgbd", tmp_path / "K", "--out", tmp_path / "k", "--trim", "0",
              "--no-progress")
    assert res.exit_code == 0, res.output
    assert sorted(r.sequence for r in read_manifest(tmp_path / "k")) == ["1", "\u00b2"]
    for name, dataset, folder in (("ias", "ias", "Training"), ("biwi", "biwi", "Training")):
        for leaf in ("\u00b2", "3"):
            for t in range(12):
                skel_frame(tmp_path / name / folder / leaf / f"{t:05d}_skel.txt", t)
        res = cli("import", dataset, tmp_path / name, "--out", tmp_path / f"{name}-out",
                  "--trim", "0", "--no-progress")
        assert res.exit_code == 0, res.output
        subjects = sorted(r.subject for r in read_manifest(tmp_path / f"{name}-out"))
        # IAS takes any folder name as the subject; BIWI wants person numbers
        assert subjects == (["3", "\u00b2"] if name == "ias" else ["3"])
        if name == "biwi":
            assert "Training/\u00b2: folder name is not a person number" in res.output


def test_13_messages_that_name_the_real_problem(store: Path, run: Path, tmp_path: Path):
    src = tmp_path / "s"
    shutil.copytree(store, src)
    first, second = [r for r in read_manifest(src) if r.split == "test" and r.condition == "bg"][:2]
    (src / first.path).write_text("not an archive\n")
    with open(src / second.path, "wb") as fh:  # 1 GB, sparse
        fh.truncate(1 << 30)
    line = one_error(cli("eval", "--baseline", "raw", "--f", "20", "--data", src, "--probe", "bg",
                         "--gallery", "nm"))
    assert line.endswith(f"{src / first.path}: not an .npz file (not a complete zip archive)")
    (src / first.path).unlink()
    shutil.copy(store / first.path, src / first.path)
    line = one_error(cli("eval", "--baseline", "raw", "--f", "20", "--data", src, "--probe", "bg",
                         "--gallery", "nm"))
    assert line.endswith(f"{src / second.path}: not an .npz file (not a complete zip archive)")
    line = one_error(cli("eval", "--run", tmp_path / "nonexist", "--data", store))
    assert line == f"error: --run {tmp_path / 'nonexist'}: no such run folder"


def test_13_convert_joint_count_error_names_the_file(tmp_path: Path):
    store = pose_store(tmp_path / "s", [("1", "probe", "01", 1), ("1", "gallery", "02", 2)])
    np.savez(store / "1/probe-01.npz", joints=np.zeros((8, 20, 3), np.float32))  # no layout
    line = one_error(cli("convert", store, "--layout", "coco-17", "--out", tmp_path / "out"))
    assert "1/probe-01.npz" in line and "20 joints" in line


def test_14_one_walk_name_twice_skips_one_and_finishes(tmp_path: Path):
    src = kgbd_set(tmp_path / "Data", {"Person001": 3, "Person002": 3})
    (src / "Person001" / "1.TXT").write_bytes((src / "Person001" / "1.txt").read_bytes())
    res = cli("import", "kgbd", src, "--out", tmp_path / "out", "--trim", "0", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "Person001/1.txt: same walk name '1' as Person001/1.TXT; skipped" in res.output
    assert len(read_manifest(tmp_path / "out")) == 6


# ---------------------------------------------------------------------------
# 15-16: memory and an interrupted re-import

def _zeros_npz(path: Path, frames: int) -> None:
    """A real .npz whose joints (frames, 20, 3) are zeros: small on disk, large in memory."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (frames, 20, 3)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("joints.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            chunk = bytes(4 * 20 * 3 * 10_000)
            for _ in range(frames // 10_000):
                fh.write(chunk)


def test_15_sizes_checked_before_loading(tmp_path: Path, monkeypatch):
    store = pose_store(tmp_path / "s", [("1", "probe", "01", 1), ("1", "gallery", "02", 2)])
    _zeros_npz(store / "1/probe-01.npz", 200_000)  # 48 MB of joints
    assert (store / "1/probe-01.npz").stat().st_size < 200_000
    # the default bound refuses the 3-million-frame walk of the review (720 MB)
    with pytest.raises(StoreError, match="more than the 256 MiB"):
        check_size(Path("w.npz"), (3_000_000, 20, 3))
    assert MAX_SEQUENCE_BYTES == 256 << 20
    monkeypatch.setenv("VID2REID_MAX_SEQUENCE_MB", "16")
    line = one_error(raw_eval(store))
    assert "1/probe-01.npz: joints of shape (200000, 20, 3) would take 46 MiB" in line
    rec = next(r for r in read_manifest(store) if r.path == "1/probe-01.npz")
    tracemalloc.start()
    try:
        with pytest.raises(StoreError, match="would take 46 MiB"):
            load_joints(store, rec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # refused from the header: the 46 MiB were never allocated


def test_16_interrupted_reimport_never_leaves_a_wrong_manifest(tmp_path: Path):
    src = kgbd_set(tmp_path / "Data", {f"Person00{i}": 4 for i in range(1, 5)})
    out = tmp_path / "out"
    import_kgbd(src, out, seed=0, trim=0, progress=False)
    first = {r.path: r.condition for r in read_manifest(out)}
    # the re-import with another seed fails part-way (a folder sits where a file must go)
    (out / "Person003" / "2.npz").unlink()
    (out / "Person003" / "2.npz").mkdir()
    with pytest.raises(OSError):
        import_kgbd(src, out, seed=1, trim=0, progress=False)
    with pytest.raises(StoreError, match="stopped before it finished; run it again"):
        read_manifest(out)
    (out / "Person003" / "2.npz").rmdir()
    import_kgbd(src, out, seed=1, trim=0, progress=False)
    second = {r.path: r.condition for r in read_manifest(out)}
    assert second.keys() == first.keys() and second != first
    assert not (out / ".manifest.csv.replaced").exists()


def test_5_resume_of_a_run_without_data_hash_warns(store: Path, tmp_path: Path):
    from vid2reid.runfile import load_run_file, save_run_file

    out = tmp_path / "runs" / "old"
    assert cli("train", "--data", store, "--out", out, *TRAIN).exit_code == 0
    ck = load_run_file(out / "checkpoint.pt")
    del ck["data_hash"]  # as runs written before the check
    save_run_file(out / "checkpoint.pt", ck)
    res = cli("train", "--data", store, "--out", out, *TRAIN[:-1], "2")
    assert res.exit_code == 0, res.output
    assert "recorded no hash of its training data" in (out / "train.log").read_text()


@pytest.mark.slow
def test_5_two_processes_training_into_one_folder(store: Path, tmp_path: Path):
    """Two real ``vid2reid train --out SAME`` at once: one trains, the other stops in one line."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "runs" / "same"
    cmd = [sys.executable, "-m", "vid2reid", "train", "--data", str(store), "--out", str(out),
           *TRAIN[:-1], "40"]  # long enough that the second starts while the first trains
    env = dict(os.environ, PYTHONPATH=str(repo))
    procs = [subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    loser = next(err for rc, (_, err) in results if rc == 1) if codes == [0, 1] else ""
    assert codes == [0, 1], results
    errors = [line for line in loser.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "being written by pid" in errors[0] and "Traceback" not in loser
    epochs = [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 41))  # every epoch once, from one process
