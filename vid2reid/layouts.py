"""Joint layouts: joint names and the root joint of each skeleton format.

A layout name is stored with every sequence so that later stages know what the
joints mean. Unknown layouts still work for SimMC (any J is fine; joint 0 is
the root), but methods that need body parts ask for a known layout or a
user-supplied part map (``load_part_map``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2reid.errors import ConfigError


@dataclass(frozen=True)
class Layout:
    name: str
    joints: tuple[str, ...]
    root: int  # index of the joint subtracted per frame (pelvis / hip centre)

    @property
    def num_joints(self) -> int:
        return len(self.joints)


_H36M = ("pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine",
         "thorax", "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder",
         "r_elbow", "r_wrist")
_COCO = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
         "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle",
         "r_ankle")
_BLAZEPOSE = ("nose", "l_eye_inner", "l_eye", "l_eye_outer", "r_eye_inner", "r_eye", "r_eye_outer",
              "l_ear", "r_ear", "mouth_l", "mouth_r", "l_shoulder", "r_shoulder", "l_elbow",
              "r_elbow", "l_wrist", "r_wrist", "l_pinky", "r_pinky", "l_index", "r_index",
              "l_thumb", "r_thumb", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
              "l_heel", "r_heel", "l_foot_index", "r_foot_index")
_KINECT_V1 = ("hip_center", "spine", "shoulder_center", "head", "l_shoulder", "l_elbow", "l_wrist",
              "l_hand", "r_shoulder", "r_elbow", "r_wrist", "r_hand", "l_hip", "l_knee", "l_ankle",
              "l_foot", "r_hip", "r_knee", "r_ankle", "r_foot")
_KINECT_V2 = ("spine_base", "spine_mid", "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "l_hand",
              "r_shoulder", "r_elbow", "r_wrist", "r_hand", "l_hip", "l_knee", "l_ankle", "l_foot",
              "r_hip", "r_knee", "r_ankle", "r_foot", "spine_shoulder", "l_hand_tip", "l_thumb",
              "r_hand_tip", "r_thumb")
# OpenPose-COCO-18 without eyes and ears, as in the SimMC/Hi-MPC CASIA-B data.
_CASIA14 = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
            "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")

LAYOUTS: dict[str, Layout] = {
    "h36m-17": Layout("h36m-17", _H36M, root=0),
    # COCO has no pelvis joint; root on the left hip keeps every frame root-relative.
    "coco-17": Layout("coco-17", _COCO, root=11),
    "blazepose-33": Layout("blazepose-33", _BLAZEPOSE, root=23),
    "kinect-v1-20": Layout("kinect-v1-20", _KINECT_V1, root=0),
    "kinect-v2-25": Layout("kinect-v2-25", _KINECT_V2, root=0),
    # The reference's CASIA-B data subtracts joint 0 (the head/nose) per frame.
    "casia-14": Layout("casia-14", _CASIA14, root=0),
}


def get_layout(name: str) -> Layout:
    """Look up a known layout by name; ConfigError says which names exist."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown joint layout {name!r}; known layouts: {', '.join(sorted(LAYOUTS))}"
        ) from None


def root_joint(name: str) -> int:
    """Root joint index for root-relative normalisation (0 for unknown layouts)."""
    layout = LAYOUTS.get(name)
    return layout.root if layout is not None else 0


# ---------------------------------------------------------------------------
# Body-part maps for Hi-MPC: 10 components and 5 limbs per layout, by joint name.

COMPONENTS = ("l_leg_up", "l_leg_down", "r_leg_up", "r_leg_down", "torso", "head",
              "l_arm_up", "l_arm_down", "r_arm_up", "r_arm_down")
LIMBS = ("l_leg", "r_leg", "torso", "l_arm", "r_arm")

PART_MAP_HELP = (
    'pass a part map with --part-map FILE.json: {"layout": NAME, "joints": [J joint names], '
    '"root": INDEX, "components": {' + ", ".join(f'"{c}": [...]' for c in COMPONENTS[:2])
    + ', ... all of ' + "/".join(COMPONENTS) + '}, "limbs": {' + "/".join(LIMBS)
    + ': [joint indices or names]}}'
)


@dataclass(frozen=True)
class PartMap:
    """Which joints make up each Hi-MPC body component and limb, as joint indices.

    ``components`` and ``limbs`` hold one tuple of joint indices per name in
    ``COMPONENTS`` / ``LIMBS`` order. A part's position is the plain mean of
    its joints (the method's definition).
    """

    layout: str
    joints: tuple[str, ...]
    root: int
    components: tuple[tuple[int, ...], ...]
    limbs: tuple[tuple[int, ...], ...]

    @property
    def num_joints(self) -> int:
        return len(self.joints)


def _legs_arms(leg_up: tuple[str, ...], leg_down: tuple[str, ...], arm_up: tuple[str, ...],
               arm_down: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Left/right versions of leg and arm segments given as side-free names ("hip" -> "l_hip")."""
    out = {}
    for side in ("l", "r"):
        out[f"{side}_leg_up"] = tuple(f"{side}_{n}" for n in leg_up)
        out[f"{side}_leg_down"] = tuple(f"{side}_{n}" for n in leg_down)
        out[f"{side}_arm_up"] = tuple(f"{side}_{n}" for n in arm_up)
        out[f"{side}_arm_down"] = tuple(f"{side}_{n}" for n in arm_down)
    return out


def _limbs_from(components: dict[str, tuple[str, ...]],
                torso: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Limbs = union of a side's upper and lower segment; the torso limb is given."""
    limbs = {"torso": torso}
    for side in ("l", "r"):
        for part in ("leg", "arm"):
            up, down = components[f"{side}_{part}_up"], components[f"{side}_{part}_down"]
            limbs[f"{side}_{part}"] = tuple(dict.fromkeys(up + down))
    return limbs


def _named_map(comps: dict[str, tuple[str, ...]], torso_limb: tuple[str, ...]):
    return comps, _limbs_from(comps, torso_limb)


# Kinect v1/v2 and casia-14 follow the authors' maps (the Hi-MPC paper and code); Kinect-style layouts with
# several joints per segment split segments as {proximal, middle} / {distal...}; 3-joint chains
# (h36m, coco) follow the authors' OpenPose-style casia-14 map: up {hip}, down {knee, ankle}.
_KINECT1_C = {**_legs_arms(("hip", "knee"), ("ankle", "foot"), ("shoulder", "elbow"),
                           ("wrist", "hand")),
              "torso": ("hip_center", "spine"), "head": ("shoulder_center", "head")}
_KINECT2_C = {**_legs_arms(("hip", "knee"), ("ankle", "foot"), ("shoulder", "elbow"),
                           ("wrist", "hand", "hand_tip", "thumb")),
              "torso": ("spine_base", "spine_mid"), "head": ("neck", "head", "spine_shoulder")}
_CASIA14_C = {**_legs_arms(("hip",), ("knee", "ankle"), ("shoulder",), ("elbow", "wrist")),
              "torso": ("neck",), "head": ("nose",)}
_H36M_C = {**_legs_arms(("hip",), ("knee", "ankle"), ("shoulder",), ("elbow", "wrist")),
           "torso": ("pelvis", "spine", "thorax"), "head": ("neck", "head")}
_COCO_HEAD = ("nose", "l_eye", "r_eye", "l_ear", "r_ear")
_COCO_C = {**_legs_arms(("hip",), ("knee", "ankle"), ("shoulder",), ("elbow", "wrist")),
           "torso": ("l_shoulder", "r_shoulder", "l_hip", "r_hip"), "head": _COCO_HEAD}
_BLAZE_HEAD = ("nose", "l_eye_inner", "l_eye", "l_eye_outer", "r_eye_inner", "r_eye",
               "r_eye_outer", "l_ear", "r_ear", "mouth_l", "mouth_r")
_BLAZE_C = {**_legs_arms(("hip", "knee"), ("ankle", "heel", "foot_index"),
                         ("shoulder", "elbow"), ("wrist", "pinky", "index", "thumb")),
            "torso": ("l_shoulder", "r_shoulder", "l_hip", "r_hip"), "head": _BLAZE_HEAD}

_PART_NAMES: dict[str, tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]] = {
    "kinect-v1-20": _named_map(_KINECT1_C, ("hip_center", "spine", "shoulder_center", "head")),
    "kinect-v2-25": _named_map(_KINECT2_C, ("spine_base", "spine_mid", "neck", "head",
                                            "spine_shoulder")),
    "casia-14": _named_map(_CASIA14_C, ("nose", "neck")),
    "h36m-17": _named_map(_H36M_C, ("pelvis", "spine", "thorax", "neck", "head")),
    "coco-17": _named_map(_COCO_C, _COCO_HEAD + ("l_shoulder", "r_shoulder", "l_hip", "r_hip")),
    "blazepose-33": _named_map(_BLAZE_C, _BLAZE_HEAD + ("l_shoulder", "r_shoulder", "l_hip",
                                                        "r_hip")),
}


def _resolve(parts: dict, order: tuple[str, ...], joints: tuple[str, ...], what: str,
             source: str) -> tuple[tuple[int, ...], ...]:
    """Joint names or indices -> index tuples in ``order``; ConfigError on anything invalid."""
    if not isinstance(parts, dict):
        raise ConfigError(f"{source}: '{what}' must be an object of name -> joint list")
    missing = [p for p in order if p not in parts]
    extra = [p for p in parts if p not in order]
    if missing or extra:
        raise ConfigError(f"{source}: '{what}' must name exactly {', '.join(order)}"
                          + (f"; missing {', '.join(missing)}" if missing else "")
                          + (f"; unknown {', '.join(map(str, extra))}" if extra else ""))
    out = []
    for p in order:
        members = parts[p]
        if not isinstance(members, (list, tuple)) or not members:
            raise ConfigError(f"{source}: {what} {p!r} needs a non-empty list of joints")
        idx = []
        for m in members:
            if isinstance(m, str):
                if m not in joints:
                    raise ConfigError(f"{source}: {what} {p!r} names unknown joint {m!r}")
                idx.append(joints.index(m))
            elif isinstance(m, int) and not isinstance(m, bool) and 0 <= m < len(joints):
                idx.append(m)
            else:
                raise ConfigError(f"{source}: {what} {p!r} has invalid joint {m!r} "
                                  f"(layout has {len(joints)} joints)")
        out.append(tuple(idx))
    return tuple(out)


def get_part_map(name: str) -> PartMap:
    """The built-in Hi-MPC part map of a named layout; ConfigError says how to supply one."""
    if name not in _PART_NAMES:
        raise ConfigError(f"joint layout {name!r} has no built-in Hi-MPC part map (built-in: "
                          f"{', '.join(sorted(_PART_NAMES))}); {PART_MAP_HELP}")
    layout = LAYOUTS[name]
    comps, limbs = _PART_NAMES[name]
    src = f"built-in part map {name}"
    return PartMap(name, layout.joints, layout.root,
                   _resolve(comps, COMPONENTS, layout.joints, "components", src),
                   _resolve(limbs, LIMBS, layout.joints, "limbs", src))


def load_part_map(path: str | Path) -> PartMap:
    """Read a user part map (JSON, or YAML if PyYAML is installed) for any layout.

    Format: {"layout": name, "joints": [names], "root": index, "components":
    {component: [joint indices or names]}, "limbs": {limb: [...]}}.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read part map ({exc.strerror or exc})") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml  # optional dependency, only for YAML part maps

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise ConfigError(f"{p}: YAML part maps need PyYAML; write the map as JSON") from None
    except Exception as exc:  # json/yaml syntax errors
        raise ConfigError(f"{p}: not a valid part map file ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a part map must be an object; {PART_MAP_HELP}")
    for key in ("layout", "joints", "components", "limbs"):
        if key not in data:
            raise ConfigError(f"{p}: part map has no {key!r}; {PART_MAP_HELP}")
    joints = data["joints"]
    if not isinstance(joints, list) or not joints or not all(isinstance(j, str) for j in joints):
        raise ConfigError(f"{p}: 'joints' must be a non-empty list of joint names")
    joints_t = tuple(joints)
    root = data.get("root", 0)
    if not isinstance(root, int) or isinstance(root, bool) or not 0 <= root < len(joints_t):
        raise ConfigError(f"{p}: 'root' must be a joint index in 0..{len(joints_t) - 1}")
    return PartMap(str(data["layout"]), joints_t, root,
                   _resolve(data["components"], COMPONENTS, joints_t, "components", str(p)),
                   _resolve(data["limbs"], LIMBS, joints_t, "limbs", str(p)))


def resolve_part_map(path: str | Path, num_joints: int, layout: str) -> PartMap:
    """The part map of a run: the user's file ``path`` or, when empty, ``layout``'s built-in one."""
    pm = load_part_map(path) if path else get_part_map(layout)
    if pm.num_joints != num_joints:
        src = path or f"built-in part map {layout}"
        raise ConfigError(f"{src}: part map has {pm.num_joints} joints but the data has "
                          f"{num_joints} (layout {layout!r})")
    return pm


def part_matrix(parts: tuple[tuple[int, ...], ...], num_joints: int) -> np.ndarray:
    """(P, J) averaging matrix: row p has 1/|part p| on part p's joints."""
    m = np.zeros((len(parts), num_joints), dtype=np.float32)
    for i, idx in enumerate(parts):
        for j in idx:
            m[i, j] += 1.0 / len(idx)
    return m


def part_positions(joints: np.ndarray, layout: str | PartMap) -> tuple[np.ndarray, np.ndarray]:
    """Component (T, 10, 3) and limb (T, 5, 3) positions of a (T, J, 3) sequence.

    Joints are made root-relative per frame first (the layout's root joint is
    subtracted); each part is the plain mean of its joints.
    """
    pm = layout if isinstance(layout, PartMap) else get_part_map(layout)
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1] != pm.num_joints or joints.shape[2] != 3:
        raise ConfigError(f"part map {pm.layout!r} expects (T, {pm.num_joints}, 3) joints, "
                          f"got {joints.shape}")
    rel = joints - joints[:, pm.root : pm.root + 1, :]
    comp = np.einsum("pj,tjc->tpc", part_matrix(pm.components, pm.num_joints), rel)
    limb = np.einsum("pj,tjc->tpc", part_matrix(pm.limbs, pm.num_joints), rel)
    return comp.astype(np.float32), limb.astype(np.float32)


# ---------------------------------------------------------------------------
# Bones (the joint-scale graph of SM-SGE, vid2reid/encoders.py), by joint name.

def _chain(*names: str) -> list[tuple[str, str]]:
    return list(zip(names[:-1], names[1:]))


def _sided(*chains: tuple[str, ...]) -> list[tuple[str, str]]:
    """Both sides' bones of chains given with '{s}' for the side ("{s}_hip" -> l_hip, r_hip)."""
    return [(a.format(s=s), b.format(s=s)) for s in "lr" for c in chains for a, b in _chain(*c)]


_BONE_NAMES: dict[str, list[tuple[str, str]]] = {
    "kinect-v1-20": _chain("hip_center", "spine", "shoulder_center", "head")
    + _sided(("shoulder_center", "{s}_shoulder", "{s}_elbow", "{s}_wrist", "{s}_hand"),
             ("hip_center", "{s}_hip", "{s}_knee", "{s}_ankle", "{s}_foot")),
    "kinect-v2-25": _chain("spine_base", "spine_mid", "spine_shoulder", "neck", "head")
    + _sided(("spine_shoulder", "{s}_shoulder", "{s}_elbow", "{s}_wrist", "{s}_hand",
              "{s}_hand_tip"), ("{s}_wrist", "{s}_thumb"),
             ("spine_base", "{s}_hip", "{s}_knee", "{s}_ankle", "{s}_foot")),
    "casia-14": _chain("nose", "neck")
    + _sided(("neck", "{s}_shoulder", "{s}_elbow", "{s}_wrist"),
             ("neck", "{s}_hip", "{s}_knee", "{s}_ankle")),
    "h36m-17": _chain("pelvis", "spine", "thorax", "neck", "head")
    + _sided(("thorax", "{s}_shoulder", "{s}_elbow", "{s}_wrist"),
             ("pelvis", "{s}_hip", "{s}_knee", "{s}_ankle")),
    "coco-17": [("l_shoulder", "r_shoulder"), ("l_hip", "r_hip")]
    + _sided(("{s}_ear", "{s}_eye", "nose", "{s}_shoulder", "{s}_elbow", "{s}_wrist"),
             ("{s}_shoulder", "{s}_hip", "{s}_knee", "{s}_ankle")),
    "blazepose-33": [("l_shoulder", "r_shoulder"), ("l_hip", "r_hip"), ("mouth_l", "mouth_r"),
                     ("nose", "mouth_l"), ("nose", "mouth_r")]
    + _sided(("{s}_ear", "{s}_eye_outer", "{s}_eye", "{s}_eye_inner", "nose", "{s}_shoulder",
              "{s}_elbow", "{s}_wrist", "{s}_pinky", "{s}_index", "{s}_wrist"),
             ("{s}_wrist", "{s}_thumb"),
             ("{s}_shoulder", "{s}_hip", "{s}_knee", "{s}_ankle", "{s}_heel", "{s}_foot_index",
              "{s}_ankle")),
}


def layout_bones(layout: str) -> tuple[tuple[int, int], ...]:
    """The bones of a built-in layout as joint-index pairs (empty for a layout without them)."""
    if layout not in _BONE_NAMES:
        return ()
    joints = LAYOUTS[layout].joints
    return tuple(sorted({tuple(sorted((joints.index(a), joints.index(b))))  # type: ignore[misc]
                         for a, b in _BONE_NAMES[layout]}))


def bones(pm: PartMap) -> tuple[tuple[int, int], ...]:
    """The skeleton's bones as joint-index pairs.

    Built-in layouts have their bones; for a user part map of another layout the joints of
    one body component are chained in the order listed and each component's first joint is
    joined to the first joint of the torso component (a tree over every listed joint).
    """
    if pm.layout in _BONE_NAMES and pm.joints == LAYOUTS[pm.layout].joints:
        return layout_bones(pm.layout)
    out: set[tuple[int, int]] = set()
    hub = pm.components[COMPONENTS.index("torso")][0]
    for comp in pm.components:
        for a, b in zip(comp[:-1], comp[1:]):
            if a != b:
                out.add((min(a, b), max(a, b)))
        if comp[0] != hub:
            out.add((min(comp[0], hub), max(comp[0], hub)))
    return tuple(sorted(out))
