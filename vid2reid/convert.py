"""Layout conversion: a sequence (or a whole store) from one built-in joint layout to another.

Each joint of the target layout is, in this order of preference:

- **copied** from the source joint with the same name in the shared vocabulary
  (vid2reid.unified; e.g. Kinect ``hip_center`` -> H36M ``pelvis``), bit for bit;
- **derived** as the mid-point of two joints the source has or can derive (``DERIVED``):
  ``pelvis`` = mid(hips), ``thorax`` = mid(shoulders), ``spine`` = mid(pelvis, thorax),
  ``head`` = mid(ears), ``neck`` = mid(thorax, head). These are approximations: a Kinect's
  hip centre sits a little above the hip joints, H36M's head is nearer the top of the head;
- **missing**: it is filled with the target's root joint, so that after root-relative
  normalisation it reads as exactly zero in every frame (vid2reid.unified.presence), and its
  name is listed in the file's (and the manifest's) ``missing`` field.

A pair is refused (ConfigError) when the target's root joint or any of the 12 limb joints
cannot be copied or derived, or when fewer than half of the target's joints can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2reid import safepath
from vid2reid.errors import ConfigError, StoreError
from vid2reid.layouts import LAYOUTS, get_layout
from vid2reid.locks import claim_output
from vid2reid.store import (MANIFEST, Record, forget_replaced, load_joints, read_manifest,
                            content_hash, retire_manifest, save_sequence, with_hash,
                            write_manifest)
from vid2reid.unified import LIMB_JOINTS, canonical_names, check_layout

# joint -> the two joints whose mid-point stands in for it (names in the shared vocabulary)
DERIVED: dict[str, tuple[str, str]] = {
    "pelvis": ("l_hip", "r_hip"),
    "thorax": ("l_shoulder", "r_shoulder"),
    "spine": ("pelvis", "thorax"),
    "head": ("l_ear", "r_ear"),
    "neck": ("thorax", "head"),
}
MIN_PRESENT = 0.5  # refuse a pair when fewer of the target's joints can be copied or derived


@dataclass(frozen=True)
class ConversionPlan:
    """How each target joint is made: ``weights`` (J_dst, J_src) rows for copied/derived joints."""

    src: str
    dst: str
    kind: tuple[str, ...]  # per target joint: "copied", "derived" or "missing"
    weights: np.ndarray  # (J_dst, J_src) float64; a copied joint's row is one 1.0
    copy_from: tuple[int, ...]  # per target joint: source index if copied, else -1

    @property
    def missing(self) -> tuple[str, ...]:
        names = get_layout(self.dst).joints
        return tuple(n for n, k in zip(names, self.kind) if k == "missing")

    @property
    def derived(self) -> tuple[str, ...]:
        names = get_layout(self.dst).joints
        return tuple(n for n, k in zip(names, self.kind) if k == "derived")

    def summary(self) -> str:
        n = len(self.kind)
        copied = n - len(self.missing) - len(self.derived)
        return (f"{self.src} -> {self.dst}: {copied} of {n} joints copied"
                + (f", derived {', '.join(self.derived)}" if self.derived else "")
                + (f", missing {', '.join(self.missing)}" if self.missing else ""))


def _source_weights(name: str, src_index: dict[str, int], n_src: int,
                    depth: int = 0) -> np.ndarray | None:
    """Weights over the source joints that give joint ``name`` (None if it cannot be made)."""
    if name in src_index:
        w = np.zeros(n_src)
        w[src_index[name]] = 1.0
        return w
    if name not in DERIVED or depth > 3:
        return None
    parts = [_source_weights(p, src_index, n_src, depth + 1) for p in DERIVED[name]]
    if any(p is None for p in parts):
        return None
    return 0.5 * (parts[0] + parts[1])


def conversion_plan(src: str, dst: str) -> ConversionPlan:
    """The plan for ``src`` -> ``dst``; ConfigError (one line) when the pair is not meaningful."""
    check_layout(src)
    check_layout(dst)
    if src == dst:
        raise ConfigError(f"the store is already in layout {dst!r}; nothing to convert")
    src_names, dst_names = canonical_names(src), canonical_names(dst)
    src_index = {n: i for i, n in enumerate(src_names)}
    kind, rows, copy_from = [], [], []
    for name in dst_names:
        w = _source_weights(name, src_index, len(src_names))
        copied = name in src_index
        kind.append("copied" if copied else "derived" if w is not None else "missing")
        rows.append(w if w is not None else np.zeros(len(src_names)))
        copy_from.append(src_index[name] if copied else -1)
    dst_layout = get_layout(dst)
    plan = ConversionPlan(src, dst, tuple(kind), np.stack(rows), tuple(copy_from))
    root_name = dst_layout.joints[dst_layout.root]
    lost_limbs = [dst_layout.joints[i] for i, n in enumerate(dst_names)
                  if n in LIMB_JOINTS and kind[i] == "missing"]
    have = sum(k != "missing" for k in kind)
    if kind[dst_layout.root] == "missing":
        raise ConfigError(f"cannot convert {src} to {dst}: {dst}'s root joint {root_name!r} has no "
                          f"counterpart in {src}")
    if lost_limbs:
        raise ConfigError(f"cannot convert {src} to {dst}: no counterpart for "
                          f"{', '.join(lost_limbs)}")
    if have < MIN_PRESENT * len(kind):
        raise ConfigError(f"cannot convert {src} to {dst}: only {have} of {dst}'s {len(kind)} "
                          f"joints correspond ({', '.join(plan.missing)} missing); too little "
                          f"for a useful {dst} store")
    return plan


def convertible_pairs() -> list[tuple[str, str]]:
    """Every ordered pair of different built-in layouts that :func:`conversion_plan` accepts."""
    out = []
    for a in LAYOUTS:
        for b in LAYOUTS:
            if a != b:
                try:
                    conversion_plan(a, b)
                except ConfigError:
                    continue
                out.append((a, b))
    return out


def convert_joints(joints: np.ndarray, plan: ConversionPlan) -> np.ndarray:
    """(T, J_src, 3) -> (T, J_dst, 3): copied joints bit for bit, derived as mid-points,
    missing ones at the target's root joint."""
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1] != plan.weights.shape[1] or joints.shape[2] != 3:
        raise ConfigError(f"{plan.src} joints must have shape (T, {plan.weights.shape[1]}, 3), "
                          f"got {joints.shape}")
    out = np.einsum("ds,tsc->tdc", plan.weights, joints.astype(np.float64)).astype(np.float32)
    for d, s in enumerate(plan.copy_from):
        if s >= 0:
            out[:, d] = joints[:, s]
    root = get_layout(plan.dst).root
    for d, k in enumerate(plan.kind):
        if k == "missing":
            out[:, d] = out[:, root]
    return out


@dataclass
class ConvertSummary:
    plan: ConversionPlan
    written: int
    kept: int
    out: Path

    def lines(self) -> list[str]:
        return [self.plan.summary(),
                f"{self.written + self.kept} sequence(s) -> {self.out} ({self.written} written, "
                f"{self.kept} already converted)"]


def _already_converted(path: Path, dst: str, src: str, frames: int) -> bool:
    """A finished earlier conversion of this sequence (re-runs skip it)."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return (str(data["layout"]) == dst and "converted_from" in data.files
                    and str(data["converted_from"]) == src
                    and int(data["joints"].shape[0]) == frames)
    except Exception:
        return False  # unreadable: convert it again


def convert_store(src_dir: Path | str, layout: str, out_dir: Path | str,
                  progress: bool = True, force: bool = False) -> ConvertSummary:
    """Write the store at ``src_dir`` in ``layout`` to ``out_dir``: same paths, same manifest
    rows (subject, condition, split, extra columns), converted joints.

    Every file is written atomically and the manifest last, so an interrupted conversion leaves
    whole files only; re-running skips the sequences already converted. ``out_dir`` must be
    new, empty or an earlier conversion's output unless ``force``; it is locked while written
    (vid2reid.locks), and its old manifest is moved aside before the first file is rewritten.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if out_dir.resolve() == src_dir.resolve():
        raise ConfigError(f"{out_dir}: --out must be another folder than the store it converts")
    records = read_manifest(src_dir)
    layouts = sorted({r.layout for r in records})
    src = layouts[0] if layouts else ""
    if len(layouts) != 1 or not src:
        raise StoreError(f"{src_dir / MANIFEST}: no layout named in the manifest or the sequence "
                         f"files; conversion needs to know the joints' names")
    plan = conversion_plan(src, layout)
    with claim_output(out_dir, safepath.CONVERT, force):
        return _convert_into(src_dir, records, plan, out_dir, progress)


def _convert_into(src_dir: Path, records: list[Record], plan: ConversionPlan, out_dir: Path,
                  progress: bool) -> ConvertSummary:
    """convert_store's writing part, with ``out_dir`` claimed."""
    from tqdm import tqdm

    src, layout = plan.src, plan.dst
    if (out_dir / MANIFEST).is_file():
        try:
            old = read_manifest(out_dir)
        except StoreError:
            old = []
        if any(r.layout and r.layout != layout for r in old):
            raise StoreError(f"{out_dir}: holds a store in another layout; choose another --out")
    written = kept = 0
    retired = False
    out_records: list[Record] = []
    missing = ",".join(plan.missing)
    for rec in tqdm(records, unit="seq", desc=f"convert to {layout}", disable=not progress):
        target = safepath.inside(out_dir, rec.path, f"{src_dir / MANIFEST}")
        meta = dict(rec.extra)
        meta.update(subject=rec.subject, condition=rec.condition, sequence=rec.sequence,
                    view=rec.view, split=rec.split, converted_from=src, missing=missing)
        if _already_converted(target, layout, src, rec.frames):
            kept += 1
            out_records.append(_record(rec, layout, src, missing, out_dir))
            continue
        joints = load_joints(src_dir, rec)
        try:
            converted = convert_joints(joints, plan)
        except ConfigError as exc:
            raise StoreError(f"{src_dir / rec.path}: {exc}") from None
        if not retired:
            retire_manifest(out_dir)  # never an old manifest over files already rewritten
            retired = True
        out_records.append(save_sequence(out_dir, rec.path, converted, layout, **meta))
        written += 1
    write_manifest(out_dir, out_records)
    forget_replaced(out_dir)
    return ConvertSummary(plan, written, kept, out_dir)


def _record(rec: Record, layout: str, src: str, missing: str, out_dir: Path) -> Record:
    """The manifest row of a sequence converted by an earlier run (as save_sequence gives it);
    load_joints checks the file's layout against ``layout`` (did the file change under us?)."""
    extra = dict(rec.extra)
    extra.update(converted_from=src, missing=missing)
    extra.pop("content_hash", None)
    out = Record(subject=rec.subject, condition=rec.condition, sequence=rec.sequence,
                 view=rec.view, path=rec.path, frames=rec.frames, layout=layout,
                 split=rec.split, extra=tuple(sorted(extra.items())))
    return with_hash(out, content_hash(load_joints(out_dir, out)))
