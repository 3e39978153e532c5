"""Malformed stores, manifests, mapping files and run folders, fed to the command line.

Every case is generated here from a good input and one defect. For each, ``train``, ``eval``,
``convert`` (stores), ``eval --run`` (run folders) or ``import`` (data sets) must:

- exit with status 1 or 2,
- say what is wrong in one ``error:`` line that names a file or folder of the input,
- show no traceback (no exception escapes the command),
- change no file outside the command's output folder (the whole test folder is hashed before
  and after).

The commands run in this process (typer's runner): a subprocess per case would take seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from test_importers import kgbd_set
from vid2reid.cli import app
from vid2reid.store import save_sequence, write_manifest
from vid2reid.synthetic import make_synthetic_store

runner = CliRunner()
J = 17
TRAIN = ["--f", "4", "--epochs", "1", "--threads", "1", "--no-progress", "--device", "cpu",
         "--hidden", "8", "--batch-size", "8"]


def walk(value: float, frames: int = 8) -> np.ndarray:
    j = np.zeros((frames, J, 3), np.float32)
    j[:, 1:, 0] = value
    j[:, 1:, 1] = np.arange(1, J)
    return j


def good_store(root: Path) -> Path:
    """Three people, a probe, a gallery and a training walk each (h36m-17)."""
    recs = []
    for s in range(1, 4):
        for k, (cond, split) in enumerate((("gallery", "test"), ("probe", "test"),
                                           ("train", "train"))):
            recs.append(save_sequence(root, f"{s}/{cond}-0{k}.npz", walk(s + 10 * k), "h36m-17",
                                      subject=str(s), condition=cond, sequence=f"0{k}", view="",
                                      split=split))
    write_manifest(root, recs)
    return root


def tree(root: Path, skip: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        for name in dirnames + files:
            p = Path(dirpath) / name
            if p == skip or skip in p.parents:
                continue
            out[str(p.relative_to(root))] = ("-> " + os.readlink(p) if p.is_symlink() else
                                             hashlib.sha256(p.read_bytes()).hexdigest()
                                             if p.is_file() else "dir")
    return out


def check_refused(res, root: Path) -> str:
    assert res.exit_code in (1, 2), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.output
    assert str(root) in errors[0], errors[0]  # names the file or folder
    return errors[0]


# ---------------------------------------------------------------------------
# defects of a store (the first manifest row is a gallery walk: every command reads it)

def _lines(store: Path) -> list[str]:
    return (store / "manifest.csv").read_text().splitlines()


def _set_lines(store: Path, lines: list[str]) -> None:
    (store / "manifest.csv").write_text("\n".join(lines) + "\n")


def _first(store: Path) -> Path:
    return store / _lines(store)[1].split(",")[4]


def _edit_cell(column: str, value: str) -> Callable[[Path], None]:
    def edit(store: Path) -> None:
        lines = _lines(store)
        cols = lines[0].split(",")
        row = lines[1].split(",")
        row[cols.index(column)] = value
        lines[1] = ",".join(row)
        _set_lines(store, lines)
    return edit


def _replace_file(write: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(store: Path) -> None:
        target = _first(store)
        target.unlink()
        write(target)
    return edit


def _npz(**arrays) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    return _replace_file(write)


def _huge_header(path: Path) -> None:
    header = {"descr": "<f4", "fortran_order": False, "shape": (200_000_000, J, 3)}
    with zipfile.ZipFile(path, "w") as zf, zf.open("joints.npy", "w") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(bytes(1024))


def _symlink_out(store: Path) -> None:
    target = _first(store)
    outside = store.parent / "outside.npz"
    shutil.copy(target, outside)
    target.unlink()
    target.symlink_to(outside)


def _truncated_zip(path: Path) -> None:
    buf = path.parent / "full.tmp"
    np.savez_compressed(buf, joints=walk(1.0), layout=np.array("h36m-17"))
    data = Path(str(buf) + ".npz").read_bytes()
    Path(str(buf) + ".npz").unlink()
    path.write_bytes(data[: len(data) // 2])


STORE_DEFECTS: dict[str, Callable[[Path], None]] = {
    "manifest not UTF-8": lambda s: (s / "manifest.csv").write_bytes(
        (s / "manifest.csv").read_bytes().replace(b"gallery", b"gall\xe9ry", 1)),
    "byte-order mark, column missing": lambda s: (s / "manifest.csv").write_bytes(
        b"\xef\xbb\xbf" + (s / "manifest.csv").read_bytes().replace(b"subject,", b"who,", 1)),
    "field over 128 KiB": lambda s: _set_lines(s, [_lines(s)[0] + ",note",
                                                   _lines(s)[1] + "," + "x" * (150 << 10)]
                                               + _lines(s)[2:]),
    "short row": lambda s: _set_lines(s, _lines(s)[:1] + [",".join(_lines(s)[1].split(",")[:4])]
                                      + _lines(s)[2:]),
    "row longer than the header": lambda s: _set_lines(s, _lines(s)[:1] + [_lines(s)[1] + ",x,y"]
                                                       + _lines(s)[2:]),
    "column missing": lambda s: _set_lines(s, [_lines(s)[0].replace("frames", "length")]
                                           + _lines(s)[1:]),
    "column twice": lambda s: _set_lines(s, [_lines(s)[0].replace("view", "subject")]
                                         + _lines(s)[1:]),
    "header only": lambda s: _set_lines(s, _lines(s)[:1]),
    "no manifest": lambda s: (s / "manifest.csv").unlink(),
    "frames not a number": _edit_cell("frames", "twenty"),
    "frames negative": _edit_cell("frames", "-3"),
    "split unknown": _edit_cell("split", "validation"),
    "path empty": _edit_cell("path", ""),
    "path absolute": _edit_cell("path", "/etc/passwd"),
    "path with ..": _edit_cell("path", "../outside.npz"),
    "path missing": _edit_cell("path", "9/none.npz"),
    "symlink out of the store": _symlink_out,
    "row twice": lambda s: _set_lines(s, _lines(s) + [_lines(s)[1]]),
    "content_hash not the file's": _edit_cell("content_hash", "0" * 64),
    "layout contradicting the file": _edit_cell("layout", "coco-17"),
    "text file named .npz": _replace_file(lambda p: p.write_text("subject,frames\n1,2\n")),
    "sparse 1 GB file named .npz": _replace_file(lambda p: open(p, "wb").truncate(1 << 30)),
    "half a zip": _replace_file(_truncated_zip),
    "complex joints": _npz(joints=walk(1.0).astype(np.complex64), layout=np.array("h36m-17")),
    "bool joints": _npz(joints=walk(1.0) > 0, layout=np.array("h36m-17")),
    "NaN joints": _npz(joints=walk(np.nan), layout=np.array("h36m-17")),
    "joints (T, J)": _npz(joints=walk(1.0)[:, :, 0], layout=np.array("h36m-17")),
    "no joints array": _npz(points=walk(1.0), layout=np.array("h36m-17")),
    "20 joints in an h36m-17 store": _npz(joints=np.zeros((8, 20, 3), np.float32),
                                          layout=np.array("h36m-17")),
    "header claiming 200 million frames": _replace_file(_huge_header),
}


def _commands(store: Path, out: Path) -> dict[str, list[object]]:
    return {
        "eval": ["eval", "--baseline", "raw", "--f", "4", "--data", store, "--probe", "probe",
                 "--gallery", "gallery", "--json", out / "m.json"],
        "train": ["train", "--data", store, "--out", out / "run", *TRAIN],
        "convert": ["convert", store, "--layout", "coco-17", "--out", out / "conv"],
    }


def test_the_good_store_passes(tmp_path: Path):
    """The control: without a defect every command succeeds (so the refusals below are the
    defects', not the set-up's)."""
    store = good_store(tmp_path / "store")
    for name, args in _commands(store, tmp_path / "out").items():
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, (name, res.output)


@pytest.mark.parametrize("defect", sorted(STORE_DEFECTS))
def test_store_defect_is_refused_by_every_command(tmp_path: Path, defect: str):
    store = good_store(tmp_path / "store")
    STORE_DEFECTS[defect](store)
    out = tmp_path / "out"
    before = tree(tmp_path, skip=out)
    for name, args in _commands(store, out).items():
        res = runner.invoke(app, [str(a) for a in args])
        check_refused(res, tmp_path)
        assert tree(tmp_path, skip=out) == before, name


# ---------------------------------------------------------------------------
# defects of a run folder (eval --run)

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-run")
    store = make_synthetic_store(root / "s", n_subjects=4, walks={"nm": 2, "bg": 1},
                                 frames=(40, 44), seed=1)
    res = runner.invoke(app, [str(a) for a in ["train", "--data", store, "--out", root / "runs" / "r",
                                               "--preset", "casia-b", "--f", "20", "--x", "5",
                                               "--eps", "0.5", *TRAIN[2:]]])
    assert res.exit_code == 0, res.output
    return root / "runs" / "r"


def _config(**changes) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        info = json.loads((run / "config.json").read_text())
        for k, v in changes.items():
            if v is ...:
                info.pop(k, None)
            else:
                info[k] = v
        (run / "config.json").write_text(json.dumps(info))
    return edit


RUN_DEFECTS: dict[str, Callable[[Path], None]] = {
    "config is a list": lambda r: (r / "config.json").write_text("[1, 2]"),
    "config is null": lambda r: (r / "config.json").write_text("null"),
    "config not JSON": lambda r: (r / "config.json").write_text("{method: simmc"),
    "config not UTF-8": lambda r: (r / "config.json").write_bytes(b'{"method": "s\xe9"}'),
    "no config": lambda r: (r / "config.json").unlink(),
    "num_joints a word": _config(num_joints="twenty"),
    "num_joints missing": _config(num_joints=...),
    "num_joints other layout": _config(num_joints=20),
    "hidden a word": _config(hidden="abc"),
    "method a list": _config(method=["simmc"]),
    "f true": _config(f=True),
    "f zero": _config(f=0),
    "model.pt is text": lambda r: (r / "model.pt").write_text("not a model"),
    "model.pt a list": lambda r: __import__("torch").save([1, 2], r / "model.pt"),
}


@pytest.mark.parametrize("defect", sorted(RUN_DEFECTS))
def test_run_defect_is_refused_by_eval(run: Path, tmp_path: Path, defect: str):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    RUN_DEFECTS[defect](copy)
    store = run.parent.parent / "s"
    before = tree(tmp_path, skip=tmp_path / "out")
    res = runner.invoke(app, ["eval", "--run", str(copy), "--data", str(store), "--probe", "bg",
                              "--gallery", "nm"])
    check_refused(res, tmp_path)
    assert tree(tmp_path, skip=tmp_path / "out") == before


def test_no_such_run_folder(run: Path, tmp_path: Path):
    res = runner.invoke(app, ["eval", "--run", str(tmp_path / "none"), "--data",
                              str(run.parent.parent / "s")])
    assert check_refused(res, tmp_path).endswith(f"--run {tmp_path / 'none'}: no such run folder")


# ---------------------------------------------------------------------------
# defects of a data set being imported

def _csv_src(root: Path, mapping: bytes) -> list[object]:
    src = root / "src"
    src.mkdir()
    for k in range(2):
        np.save(src / f"w{k}.npy", walk(k + 1.0, 20) + 1.0)
    (src / "mapping.csv").write_bytes(mapping)
    return ["import", "csv", src, "--layout", "h36m-17", "--no-progress"]


def _kgbd_src(root: Path, files: dict[str, str] | None = None) -> list[object]:
    src = kgbd_set(root / "Data", {}) if files is not None else root / "Data"
    src.mkdir(exist_ok=True)
    for name, text in (files or {}).items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    return ["import", "kgbd", src, "--no-progress"]


HEAD = b"file,subject,condition,split\n"
IMPORT_DEFECTS: dict[str, Callable[[Path], list[object]]] = {
    "mapping not UTF-8": lambda r: _csv_src(r, HEAD + b"w0.npy,\xe9,nm,train\n"),
    "mapping column missing": lambda r: _csv_src(r, b"file,subject,split\nw0.npy,1,train\n"),
    "mapping short row": lambda r: _csv_src(r, HEAD + b"w0.npy,1\n"),
    "mapping field over 128 KiB": lambda r: _csv_src(r, HEAD + b"w0.npy,1,nm,train,"
                                                     + b"x" * (150 << 10) + b"\n"),
    "mapping path with ..": lambda r: _csv_src(r, HEAD + b"../src/w0.npy,1,nm,train\n"),
    "mapping path absolute": lambda r: _csv_src(r, HEAD + b"/etc/passwd,1,nm,train\n"),
    "mapping file twice": lambda r: _csv_src(r, HEAD + b"w0.npy,1,nm,train\nw0.npy,2,nm,train\n"),
    "mapping reserved column": lambda r: _csv_src(r, b"file,subject,condition,split,content_hash\n"
                                                  b"w0.npy,1,nm,train,x\n"),
    "mapping split unknown": lambda r: _csv_src(r, HEAD + b"w0.npy,1,nm,dev\n"),
    "kgbd without person folders": lambda r: _kgbd_src(r, {"notes.txt": "hello"}),
    "kgbd with only unreadable walks": lambda r: _kgbd_src(r, {"Person001/1.txt": "a;b;c\n",
                                                               "Person002/1.txt": ""}),
}


@pytest.mark.parametrize("defect", sorted(IMPORT_DEFECTS))
def test_import_defect_is_refused(tmp_path: Path, defect: str):
    args = IMPORT_DEFECTS[defect](tmp_path)
    out = tmp_path / "out"
    before = tree(tmp_path, skip=out)
    res = runner.invoke(app, [str(a) for a in args] + ["--out", str(out)])
    check_refused(res, tmp_path)
    assert tree(tmp_path, skip=out) == before


def test_at_least_thirty_defects():
    assert len(STORE_DEFECTS) + len(RUN_DEFECTS) + len(IMPORT_DEFECTS) >= 30
