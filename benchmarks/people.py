"""Bench of the walk association (``vid2reid group``'s and training's "people"): regimes.

Generated stores calibrated to the regimes the association must handle, with their people
known by construction, and real stores where given:

- ``set1``: 27 people x 3 walks (one normal, two altered gaits), 20 joints, 120 frames;
  bone jitter within a walk (MAD / mean) 0.025, sd across one person's walks 0.033, between
  people 0.079;
- ``set2``: 10 people x 60 walks (10 each of six gaits), 25 joints, 54-244 frames;
  0.028 / 0.026 / 0.051;
- ``kgbd-like``: 164 people x 1-3 walks, 20 joints, 188-1314 frames; 0.058 / 0.033 / 0.097;
- ``mix-*``: 2 to 100 walks per person, 10 to 1,000 people; in every generated store the
  gait types change posture and motion more than people differ;
- ``set1-wrong``, ``kgbd-wrong``: set1's and kgbd-like's walks, with features that follow
  random groups of people (three a group) instead of the people: what a run trained on wrong
  pseudo-labels computes (without ``--train``; with it, the run's own features);
- ``--kgbd STORE``: a KGBD store (``vid2reid import kgbd``): its training walks, and all its
  walks; ``--store STORE`` any other store (e.g. the CASIA-B clips, extracted).

set1's and set2's gait types lie as far apart as makes raw coordinates' window top-1 on
their altered-gait probes what it is on the held-back sets (``--train N --eval``).

Per store it prints the true and found number of people, the plausible range, ARI and pair
precision / recall, and the realised bone statistics (to check the calibration). Without
``--train`` a walk's feature is its mean root-relative pose (the raw baseline's feature); with
``--train EPOCHS`` each generated store is written, a run is trained on it with the default
pseudo-labels for that many epochs, and ``vid2reid group``'s association is scored with the
run's features; ``--cues bones`` or ``--cues features`` groups by one cue alone, to see what
each adds. The bench's verdict is its worst store, never the mean:

    PYTHONPATH=. .venv/bin/python benchmarks/people.py --kgbd KGBD_STORE --store CLIPS_STORE
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2reid.association import associate, body_proportions, compare_with_subjects

# ---------------------------------------------------------------------------
# Skeletons: a parent, a rest direction (x forward, y up, z left) and a length (m) per joint.

_UP, _DOWN, _FWD = (0, 1, 0), (0, -1, 0), (1, 0, 0)
_L, _R = (0, 0, 1), (0, 0, -1)


def _kinect_v1() -> list[tuple[int, tuple, float, str]]:
    j = [(-1, (0, 0, 0), 0.0, "root"), (0, _UP, 0.10, "spine"), (1, _UP, 0.30, "spine"),
         (2, _UP, 0.16, "head")]
    for side in (_L, _R):
        s = len(j)
        j += [(2, side, 0.18, "shoulder"), (s, _DOWN, 0.28, "upper_arm"),
              (s + 1, _DOWN, 0.25, "forearm"), (s + 2, _DOWN, 0.08, "hand")]
    for side in (_L, _R):
        s = len(j)
        j += [(0, (0, -0.5, side[2]), 0.09, "hip"), (s, _DOWN, 0.43, "thigh"),
              (s + 1, _DOWN, 0.41, "shin"), (s + 2, _FWD, 0.12, "foot")]
    return j


def _kinect_v2() -> list[tuple[int, tuple, float, str]]:
    j: list = [None] * 25
    j[0], j[1], j[20] = (-1, (0, 0, 0), 0.0, "root"), (0, _UP, 0.22, "spine"), (1, _UP, 0.20, "spine")
    j[2], j[3] = (20, _UP, 0.07, "neck"), (2, _UP, 0.12, "head")
    for side, (sh, el, wr, ha, tip, th) in ((_L, (4, 5, 6, 7, 21, 22)), (_R, (8, 9, 10, 11, 23, 24))):
        j[sh] = (20, side, 0.17, "shoulder")
        j[el], j[wr] = (sh, _DOWN, 0.28, "upper_arm"), (el, _DOWN, 0.25, "forearm")
        j[ha], j[tip] = (wr, _DOWN, 0.07, "hand"), (ha, _DOWN, 0.06, "tip")
        j[th] = (wr, (0.7, -0.7, 0), 0.05, "thumb")
    for side, (hp, kn, an, ft) in ((_L, (12, 13, 14, 15)), (_R, (16, 17, 18, 19))):
        j[hp] = (0, (0, -0.3, side[2]), 0.08, "hip")
        j[kn], j[an], j[ft] = (hp, _DOWN, 0.42, "thigh"), (kn, _DOWN, 0.40, "shin"), (an, _FWD, 0.12, "foot")
    return j


SKELETONS = {"kinect-v1-20": _kinect_v1, "kinect-v2-25": _kinect_v2}
_GAIT_KEYS = ("cadence", "hip_amp", "knee_amp", "knee_bend", "arm_amp", "elbow", "lean", "limp",
              "arm_out")


def _rot_z(a: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations about the z axis (sagittal plane) by angles a (T,)."""
    c, s = np.cos(a), np.sin(a)
    r = np.zeros((len(a), 3, 3))
    r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1], r[:, 2, 2] = c, -s, s, c, 1.0
    return r


def _gait(rng: np.random.Generator, sd: float) -> dict[str, float]:
    """A gait as offsets from the typical walk; ``sd`` sets how far (gait types: large,
    one person's habits: small)."""
    return {k: float(rng.normal(0, sd)) for k in _GAIT_KEYS}


def render_walk(skel: list, lengths: np.ndarray, gait: dict[str, float], frames: int,
                rng: np.random.Generator, jitter: float, drift: float, fps: float = 30.0
                ) -> np.ndarray:
    """(T, J, 3) joints of one walk by forward kinematics. A pose estimator's error is in
    its joints: every joint moves frame by frame, so that a bone of typical length varies
    by ``jitter`` (MAD / mean) within the walk (shorter bones by more, relatively), and the
    whole body's scale drifts slowly along the walk (``drift``: a per-walk trend, as when
    the walker comes nearer the camera), so the two halves of a walk differ more than its
    whole median does."""
    J = len(skel)
    t = np.arange(frames) / fps
    ph = 2 * np.pi * (0.9 * (1 + 0.15 * gait["cadence"])) * t + rng.uniform(0, 2 * np.pi)
    typical = float(np.median(lengths[lengths > 0]))
    # a bone's length moves by about sqrt(2) times one joint's error along it
    joint_sd = jitter / 0.6745 * typical / np.sqrt(2)  # MAD of a normal = 0.6745 sd
    trend = np.linspace(-1, 1, frames)[:, None] * rng.normal(0, drift)
    lens = lengths[None, :] * np.exp(trend)
    hip_amp = 0.40 * (1 + 0.4 * gait["hip_amp"])
    knee_amp = 0.55 * (1 + 0.5 * gait["knee_amp"])
    knee_bend = 0.10 + 0.25 * abs(gait["knee_bend"])
    arm_amp = 0.35 * (1 + 0.8 * gait["arm_amp"])
    elbow = 0.25 + 0.4 * abs(gait["elbow"])
    lean = 0.05 + 0.2 * gait["lean"]
    limp = 0.3 * gait["limp"]
    arm_out = 0.25 * abs(gait["arm_out"])
    pos = np.zeros((frames, J, 3))
    rot = [None] * J
    side_of = {}
    order: list[int] = []
    while len(order) < J:  # parents before children
        order += [k for k, s in enumerate(skel) if k not in order and (s[0] < 0 or s[0] in order)]
    for k in order:
        p, d, _, name = skel[k]
        side_of[k] = d[2] if name in ("shoulder", "hip") else (side_of.get(p, 0.0) if p >= 0 else 0.0)
    for k in order:
        p, d, _, name = skel[k]
        if p < 0:
            rot[k] = _rot_z(np.zeros(frames))
            continue
        sgn = side_of[k]
        phase = ph + (np.pi if sgn < 0 else 0.0)
        amp_side = 1 + limp * sgn
        if name == "spine" or name in ("head", "neck"):
            a = np.full(frames, lean)
            base = _rot_z(-a)
        elif name == "thigh":
            base = _rot_z(hip_amp * amp_side * np.sin(phase))
        elif name == "shin":
            k_flex = knee_bend + knee_amp * amp_side * np.clip(np.sin(phase + 1.2), 0, None)
            base = rot[p] @ _rot_z(-k_flex)
        elif name == "upper_arm":
            base = rot[p] @ _rot_z(-arm_amp * np.sin(phase))
        elif name in ("forearm",):
            base = rot[p] @ _rot_z(np.full(frames, elbow))
        elif name in ("hand", "tip", "thumb", "foot"):
            base = rot[p]
        else:  # shoulder, hip: hang from the trunk (shoulders) or the root
            base = rot[p]
        rot[k] = base
        dvec = np.asarray(d, dtype=float)
        dvec = dvec / max(np.linalg.norm(dvec), 1e-9)
        if name == "upper_arm":  # arms held out from the body
            dvec = np.array([0.0, -np.cos(arm_out), sgn * np.sin(arm_out)])
        pos[:, k] = pos[:, p] + lens[:, k, None] * (base @ dvec)
    pos += rng.normal(0, joint_sd, pos.shape)
    yaw = np.deg2rad(rng.normal(0, 8))
    r = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    return (pos @ r.T).astype(np.float32)


@dataclass(frozen=True)
class Regime:
    """How a generated store is drawn (bone ratios as sd / mean, frames per walk)."""

    name: str
    layout: str
    walks: tuple[int, ...]  # walks per person, one entry per person
    gaits: int  # gait types a person walks in (walk i has gait i mod gaits)
    frames: tuple[int, int, int]  # min, median, max
    jitter: float  # bone MAD / mean within a walk
    across: float  # sd of a person's walk medians / mean
    between: float  # sd between people / mean
    gait_sd: float = 1.0  # how far gait types move posture (person habits: 0.25)
    normal_first: bool = False  # each person's first walk normal, the others altered gaits
    gallery: int = 2  # test walks per person in the normal gait (``--eval``'s gallery)
    probes: int = 3  # test walks per person in altered gaits (``--eval``'s probes)
    learned_wrong: int = 0  # > 0: features follow this many random groups of people (below)


def _frames(rng: np.random.Generator, lo: int, med: int, hi: int) -> int:
    return int(np.clip(round(med * np.exp(rng.normal(0, 0.4))), lo, hi))


def generate(reg: Regime, seed: int = 0, test: bool = False
             ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, str]:
    """Walks (T, J, 3), their person and gait type: the store ``reg`` describes. With
    ``test`` each person also walks ``reg.gallery`` normal and ``reg.probes`` altered-gait
    test walks, after the training walks (gait types negative: -1 normal, -2.. altered)."""
    rng = np.random.default_rng(seed)
    skel = SKELETONS[reg.layout]()
    tmpl = np.array([s[2] for s in skel])
    names = [s[3] for s in skel]
    kinds = sorted(set(names))
    gait_types = [_gait(rng, reg.gait_sd) for _ in range(max(reg.gaits, 1))]
    gait_types[0] = {k: 0.0 for k in _GAIT_KEYS}  # type 0: the normal walk
    walks, who, gait_of, tests = [], [], [], []
    # sd per bone: a shared height factor plus each kind of bone (both sides alike)
    height_sd = reg.between * 0.85  # people differ mostly in size: bones correlate
    bone_sd = np.sqrt(max(reg.between ** 2 - height_sd ** 2, 0.0))
    for p, n in enumerate(reg.walks):
        kind = dict(zip(kinds, rng.normal(0, bone_sd, len(kinds))))
        person = tmpl * np.exp(rng.normal(0, height_sd) + np.array([kind[k] for k in names]))
        habit = _gait(rng, 0.25)
        start = int(rng.integers(0, max(reg.gaits, 1)))
        altered = 1 + rng.permutation(max(reg.gaits - 1, 1))
        for i in range(n):
            if reg.normal_first:  # one normal walk, then altered gaits
                g = 0 if i == 0 else int(altered[(i - 1) % len(altered)])
            else:
                g = (start + i) % max(reg.gaits, 1)
            gait = {k: gait_types[g][k] + habit[k] for k in _GAIT_KEYS}
            lengths = person * np.exp(rng.normal(0, reg.across, len(tmpl)))
            t = _frames(rng, *reg.frames)
            walks.append(render_walk(skel, lengths, gait, t, rng, reg.jitter, reg.jitter * 0.8))
            who.append(p)
            gait_of.append(g)
        tests.append((person, habit))
    perm = rng.permutation(len(walks))  # people interleaved, as in a store
    walks = [walks[i] for i in perm]
    who, gait_of = list(np.array(who)[perm]), list(np.array(gait_of)[perm])
    if test:  # drawn after the training walks, so the training walks do not change with it
        for p, (person, habit) in enumerate(tests):
            altered = 1 + rng.integers(0, max(reg.gaits - 1, 1), reg.probes)
            for g in [0] * reg.gallery + list(altered):
                gait = {k: gait_types[g][k] + habit[k] for k in _GAIT_KEYS}
                lengths = person * np.exp(rng.normal(0, reg.across, len(tmpl)))
                walks.append(render_walk(skel, lengths, gait, _frames(rng, *reg.frames), rng,
                                         reg.jitter, reg.jitter * 0.8))
                who.append(p)
                gait_of.append(-1 - g)
    return walks, np.array(who), np.array(gait_of), reg.layout


def regimes(seed: int = 0) -> list[Regime]:
    """The generated stores of the bench."""
    rng = np.random.default_rng(1000 + seed)
    kg = tuple(int(x) for x in rng.choice([1, 2, 2, 3], size=164))
    mixed = tuple(int(x) for x in np.clip(np.round(np.exp(rng.uniform(np.log(2), np.log(100), 40))),
                                          2, 100))
    many = tuple(int(x) for x in rng.integers(2, 6, size=1000))
    return [
        # set1, set2: gait types as far apart as makes raw coordinates' window top-1 on their
        # altered-gait probes what it is on the held-back sets (52.7 and 38.8 %: --eval)
        Regime("set1", "kinect-v1-20", (3,) * 27, 5, (120, 120, 120), 0.025, 0.033, 0.079,
               gait_sd=0.3, normal_first=True),
        Regime("set2", "kinect-v2-25", (60,) * 10, 6, (54, 104, 244), 0.028, 0.026, 0.051,
               gait_sd=0.5),
        Regime("kgbd-like", "kinect-v1-20", kg, 1, (188, 572, 1314), 0.058, 0.033, 0.097),
        Regime("mix-100x10", "kinect-v2-25", (100,) * 10, 6, (54, 104, 244), 0.028, 0.026, 0.051,
               gait_sd=1.5),
        Regime("mix-2to100", "kinect-v1-20", mixed, 6, (54, 120, 244), 0.028, 0.03, 0.07,
               gait_sd=1.5),
        Regime("mix-1000", "kinect-v1-20", many, 4, (60, 120, 200), 0.025, 0.03, 0.08),
        # features that learned wrong groups (people joined at random in threes), as a run
        # trained on wrong pseudo-labels finds them again; the bones as set1 / kgbd-like
        Regime("set1-wrong", "kinect-v1-20", (3,) * 27, 5, (120, 120, 120), 0.025, 0.033, 0.079,
               gait_sd=0.3, normal_first=True, learned_wrong=9),
        Regime("kgbd-wrong", "kinect-v1-20", kg, 1, (188, 572, 1314), 0.058, 0.033, 0.097,
               learned_wrong=55),
    ]


# ---------------------------------------------------------------------------
# Scoring

def raw_features(walks: list[np.ndarray]) -> np.ndarray:
    """Each walk's mean root-relative pose (the raw baseline's feature), unit length."""
    f = np.stack([(w - w[:, :1]).mean(axis=0).ravel() for w in walks])
    f = f - f.mean(axis=0)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def learned_wrong_features(who: np.ndarray, groups: int, seed: int) -> np.ndarray:
    """Walk features that follow ``groups`` random groups of people, not the people: what a
    run trained on wrong pseudo-labels computes (its groups then look tight and stay)."""
    rng = np.random.default_rng(seed)
    _, person = np.unique(who, return_inverse=True)
    wrong = rng.integers(0, groups, int(person.max()) + 1)[person]
    return rng.normal(0, 1, (groups, 64))[wrong] + 0.3 * rng.normal(0, 1, (len(who), 64))


def bone_stats(walks: list[np.ndarray], who: np.ndarray, layout: str) -> dict[str, float]:
    """Realised statistics of the store's bones (the regime table's columns: the layout's
    limb and trunk segments, median over bones of each ratio)."""
    from vid2reid.association import pair_lengths, walk_pair_stats
    from vid2reid.layouts import layout_bones

    med, _ = walk_pair_stats(walks)
    J = walks[0].shape[1]
    index = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(*np.triu_indices(J, k=1)))}
    keep = np.array([index[b] for b in layout_bones(layout)
                     if not {"hand_tip", "thumb"} & set(_joint_names(layout, b))])
    jit = np.median([np.median(np.median(np.abs(d - np.median(d, 0)), 0) / np.median(d, 0))
                     for d in (pair_lengths(w[:: max(1, len(w) // 200)])[:, keep] for w in walks)])
    m = med[:, keep]
    across = []
    for p in np.unique(who):
        rows = m[who == p]
        if len(rows) > 1:
            across.append(rows.std(axis=0, ddof=1) / rows.mean(axis=0))
    means = np.stack([m[who == p].mean(axis=0) for p in np.unique(who)])
    between = means.std(axis=0, ddof=1) / means.mean(axis=0)
    from sklearn.neighbors import NearestNeighbors

    lm = np.log(m)
    z = (lm - lm.mean(axis=0)) / lm.std(axis=0)
    nn = NearestNeighbors(n_neighbors=2).fit(z).kneighbors(z, return_distance=False)[:, 1]
    return {"jitter": float(jit), "across": float(np.median(np.median(across, axis=0)))
            if across else float("nan"), "between": float(np.median(between)),
            "nearest": float((who[nn] == who).mean())}


def score(name: str, feats: np.ndarray | None, body: np.ndarray | None, who: np.ndarray,
          extra: str = "", cues: str = "both", prior: str | None = None) -> dict:
    """Associate and print one store's line (``cues``: both, or bones or features alone;
    ``prior``: ``associate``'s)."""
    feats = None if cues == "bones" else feats
    body = None if cues == "features" else body
    t = time.perf_counter()
    a = associate(feats, body, with_confidence=True, prior=prior)
    dt = time.perf_counter() - t
    e = compare_with_subjects(a.labels, [str(x) for x in who])
    true = int(len(np.unique(who)))
    lo, hi = a.people_range if hasattr(a, "people_range") else (a.people, a.people)
    print(f"{name:<22} {len(who):>6} {true:>5} {a.people:>6} {lo:>5}-{hi:<5} {e['ari']:>5.2f} "
          f"{e['precision']:>5.2f} {e['recall']:>5.2f} {a.people / true:>5.2f} {dt:>6.1f}  {extra}",
          flush=True)
    return {"store": name, "ari": e["ari"], "ratio": a.people / true}


def _joint_names(layout: str, bone: tuple[int, int]) -> list[str]:
    from vid2reid.layouts import LAYOUTS

    return [LAYOUTS[layout].joints[i].split("_", 1)[-1] for i in bone]


def store_walks(store: Path, split: str | None) -> tuple[list[np.ndarray], np.ndarray, str]:
    """A store's walks (root-relative), subjects (evaluation only) and layout."""
    from vid2reid.data import normalise
    from vid2reid.store import load_joints, read_manifest

    recs = [r for r in read_manifest(store) if split is None or r.split == split]
    walks = [normalise(load_joints(store, r), r.layout) for r in recs]
    return walks, np.array([r.subject for r in recs]), recs[0].layout


def write_store(out: Path, walks: list[np.ndarray], who: np.ndarray, gait: np.ndarray,
                layout: str) -> Path:
    """The walks as a skeleton store: training walks (gait type >= 0), and test walks
    (``generate(test=True)``) under the conditions ``gallery`` (normal) and ``probe``."""
    from vid2reid.store import save_sequence, write_manifest

    recs = []
    for i, (w, p, g) in enumerate(zip(walks, who, gait)):
        s = f"{int(p) + 1:04d}"
        cond = f"g{int(g)}" if g >= 0 else ("gallery" if g == -1 else "probe")
        recs.append(save_sequence(out, f"{s}/{s}-{cond}-{i:05d}.npz", w, layout, subject=s,
                                  condition=cond, sequence=f"{i:05d}", view="000",
                                  split="train" if g >= 0 else "test"))
    write_manifest(out, recs)
    return out


def true_grouping(walks: list[np.ndarray], who: np.ndarray, gait: np.ndarray
                  ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The upper bound's store: each person's training walks joined end to end into one walk
    (test walks unchanged), to train with ``--pseudo-labels walks``; it reads the people."""
    train = gait >= 0
    joined = [np.concatenate([w for w, p, t in zip(walks, who, train) if t and p == q])
              for q in np.unique(who[train])]
    rest = [w for w, t in zip(walks, train) if not t]
    return (joined + rest, np.concatenate([np.unique(who[train]), who[~train]]),
            np.concatenate([np.zeros(len(joined), int), gait[~train]]))


def trained_features(store: Path, epochs: int, seed: int, evaluate: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Train the default for ``epochs`` epochs on ``store``'s training walks; return (walk
    features, body, subjects) of the training walks as ``vid2reid group`` computes them (in
    the manifest's order) and, with ``evaluate``, window top-1 / mAP of the store's
    altered-gait probes against its normal gallery (``vid2reid eval``)."""
    import json
    import subprocess
    import sys

    from vid2reid.grouping import walk_features

    run = store.parent / (store.name + "-run")
    labels = ["--pseudo-labels", "walks"] if store.name.endswith("-true") else []
    subprocess.run([sys.executable, "-m", "vid2reid", "train", "--data", str(store), "--out",
                    str(run), "--f", "6", "--seed", str(seed), "--epochs", str(epochs),
                    "--threads", "1", *labels], check=True, capture_output=True)
    recs, feats, body, _ = walk_features(store, run, progress=False)
    train = np.array([r.split == "train" for r in recs])
    scores = ""
    if evaluate:
        out = store.parent / (store.name + "-eval.json")
        subprocess.run([sys.executable, "-m", "vid2reid", "eval", "--data", str(store), "--run",
                        str(run), "--probe", "probe", "--gallery", "gallery", "--json", str(out)],
                       check=True, capture_output=True)
        res = json.loads(out.read_text())
        w, r = res["window"], res["raw"]["window"]
        scores = (f"trained: top-1 {100 * w['top1']:.1f} / mAP {100 * w['mAP']:.1f} (raw "
                  f"{100 * r['top1']:.1f} / {100 * r['mAP']:.1f})")
    return feats[train], body[train], np.array([r.subject for r in recs])[train], scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated stores")
    ap.add_argument("--only", nargs="*", default=None, help="generated stores to run (names)")
    ap.add_argument("--kgbd", type=Path, nargs="*", default=[], help="KGBD stores (vid2reid import kgbd)")
    ap.add_argument("--store", type=Path, nargs="*", default=[], help="other stores, all walks")
    ap.add_argument("--train", type=int, default=0, metavar="EPOCHS",
                    help="train the default this many epochs per generated store, group with it")
    ap.add_argument("--eval", action="store_true",
                    help="with --train: also test walks per person (normal gallery, altered-gait "
                         "probes) and the run's window top-1 / mAP on them")
    ap.add_argument("--true-grouping", action="store_true",
                    help="with --train --eval: also the upper bound, each person's training walks "
                         "joined into one (reads the people: a reference, not a method)")
    ap.add_argument("--stats", action="store_true", help="print the realised bone statistics")
    ap.add_argument("--cues", choices=("both", "bones", "features"), default="both",
                    help="group by both cues (the default's association), or by one alone "
                         "(to see what each cue adds)")
    ap.add_argument("--prior", choices=("crp",), default=None,
                    help="a Chinese-restaurant prior over groupings in the cut's likelihood "
                         "(an experiment, not the default)")
    args = ap.parse_args()
    if args.cues != "both":
        print(f"cues: {args.cues} alone (not the default, which groups by both)")
    if args.prior:
        print(f"prior: {args.prior} (not the default, which has none)")
    print(f"{'store':<22} {'walks':>6} {'true':>5} {'found':>6} {'range':<11} {'ARI':>5} "
          f"{'prec':>5} {'rec':>5} {'x':>5} {'s':>6}")
    results = []
    tmp = tempfile.TemporaryDirectory(prefix="people-bench-") if args.train else None
    for reg in regimes(args.seed):
        if args.only is not None and reg.name not in args.only:
            continue
        if args.train and reg.learned_wrong:  # trained: the run's own features, as its base store
            continue
        walks, who, gait, layout = generate(reg, args.seed, test=args.train > 0 and args.eval)
        extra = ""
        if args.stats:
            s = bone_stats([w for w, g in zip(walks, gait) if g >= 0], who[gait >= 0], layout)
            extra = (f"bones: jitter {s['jitter']:.3f} across {s['across']:.3f} between "
                     f"{s['between']:.3f} nearest {s['nearest']:.0%}")
        if args.train:
            if args.true_grouping and args.eval:
                store = write_store(Path(tmp.name) / (reg.name + "-true"),
                                    *true_grouping(walks, who, gait), layout)
                print(f"{reg.name + ' (true grouping)':<22} "
                      f"{trained_features(store, args.train, args.seed, True)[3]}", flush=True)
            store = write_store(Path(tmp.name) / reg.name, walks, who, gait, layout)
            feats, body, who, scores = trained_features(store, args.train, args.seed, args.eval)
            extra = (extra + " " + scores).strip()
        elif reg.learned_wrong:
            feats = learned_wrong_features(who, reg.learned_wrong, args.seed)
            body = body_proportions(walks)
        else:
            feats, body = raw_features(walks), body_proportions(walks)
        results.append(score(reg.name, feats, body, who, extra, args.cues, args.prior))
    for store in args.kgbd:
        for split in ("train", None):
            walks, who, layout = store_walks(store, split)
            extra = ""
            if args.stats:
                s = bone_stats(walks, who, layout)
                extra = (f"bones: jitter {s['jitter']:.3f} across {s['across']:.3f} between "
                         f"{s['between']:.3f} nearest {s['nearest']:.0%}")
            results.append(score(f"{store.name}:{split or 'all'}", raw_features(walks),
                                 body_proportions(walks), who, extra, args.cues, args.prior))
    for store in args.store:
        walks, who, _ = store_walks(store, None)
        results.append(score(store.name, raw_features(walks), body_proportions(walks), who,
                             cues=args.cues, prior=args.prior))
    if results:
        worst = min(results, key=lambda r: r["ari"])
        print(f"worst ARI: {worst['ari']:.2f} ({worst['store']}); found/true from "
              f"{min(r['ratio'] for r in results):.2f} to {max(r['ratio'] for r in results):.2f}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
