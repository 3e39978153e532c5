"""One skeleton for every built-in layout: canonical joint names, a superset, and a presence mask.

Each built-in layout names its joints its own way (Kinect's ``hip_center`` is H36M's
``pelvis``). ``canonical_names(layout)`` gives every joint of a layout its name in one shared
vocabulary; ``UNIFIED_JOINTS`` is the union of those names over all built-in layouts (44
joints). A sequence of any built-in layout becomes ``(T, 44, 3)`` coordinates plus a
``(T, 44)`` presence mask (:func:`to_unified`): joints the layout has are copied to their slot,
the other slots are zero and marked absent. Nothing is derived here; deriving joints a layout
lacks is :mod:`vid2reid.convert`'s business.

Correspondences (``_ALIASES``) that are not the same name:

- Kinect v1 ``hip_center``, Kinect v2 ``spine_base`` -> ``pelvis`` (H36M);
- Kinect v2 ``spine_mid`` -> ``spine`` (H36M);
- Kinect v1 ``shoulder_center``, Kinect v2 ``spine_shoulder``, casia-14 (OpenPose) ``neck`` ->
  ``thorax`` (H36M): the point between the shoulders;
- Kinect v2 ``thumb`` = BlazePose ``thumb``.

Everything else corresponds by equal name (``l_shoulder`` is ``l_shoulder`` everywhere), or
not at all (Kinect ``l_hand`` / ``l_foot``, BlazePose ``l_index`` / ``l_foot_index`` and
Kinect v2 ``l_hand_tip`` are distinct points and are kept apart).

Missing joints inside a layout: a converted store fills a joint its source lacks with the
layout's root joint, so that after root-relative normalisation (vid2reid.data.normalise) it is
exactly zero in every frame. :func:`presence` reads that back: a non-root joint whose
root-relative coordinates are exactly ``(0, 0, 0)`` in a frame is absent in that frame.
"""

from __future__ import annotations

import numpy as np

from vid2reid.errors import ConfigError
from vid2reid.layouts import LAYOUTS, get_layout

_ALIASES: dict[str, dict[str, str]] = {
    "kinect-v1-20": {"hip_center": "pelvis", "shoulder_center": "thorax"},
    "kinect-v2-25": {"spine_base": "pelvis", "spine_mid": "spine", "spine_shoulder": "thorax"},
    "casia-14": {"neck": "thorax"},
}

# Fixed order (a trained model's input depends on it): H36M's 17, COCO's face, BlazePose's
# extra face/hand/foot points, Kinect's hands and feet, Kinect v2's hand tips.
UNIFIED_JOINTS: tuple[str, ...] = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
    "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    "nose", "l_eye", "r_eye", "l_ear", "r_ear",
    "l_eye_inner", "l_eye_outer", "r_eye_inner", "r_eye_outer", "mouth_l", "mouth_r",
    "l_pinky", "r_pinky", "l_index", "r_index", "l_thumb", "r_thumb", "l_heel", "r_heel",
    "l_foot_index", "r_foot_index",
    "l_hand", "r_hand", "l_foot", "r_foot",
    "l_hand_tip", "r_hand_tip",
)
NUM_UNIFIED = len(UNIFIED_JOINTS)
# The joints every built-in layout has: the unified skeleton's origin is the hip mid-point.
LIMB_JOINTS = tuple(f"{s}_{j}" for s in ("l", "r")
                    for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"))


def canonical_names(layout: str) -> tuple[str, ...]:
    """The joints of a built-in ``layout`` in the shared vocabulary, in the layout's order."""
    lay = get_layout(layout)
    alias = _ALIASES.get(lay.name, {})
    return tuple(alias.get(j, j) for j in lay.joints)


def unified_slots(layout: str) -> np.ndarray:
    """(J,) index into UNIFIED_JOINTS of each joint of ``layout``."""
    index = {n: i for i, n in enumerate(UNIFIED_JOINTS)}
    names = canonical_names(layout)
    missing = [n for n in names if n not in index]
    if missing:  # a layout added to LAYOUTS without a slot here
        raise ConfigError(f"layout {layout!r}: joint(s) {', '.join(missing)} have no unified slot")
    return np.array([index[n] for n in names], dtype=np.int64)


def check_layout(layout: str) -> str:
    """``layout`` if it is a built-in layout with both hips (the unified origin); else ConfigError."""
    if layout not in LAYOUTS:
        raise ConfigError(
            f"joint layout {layout or '(none)'!r} is not a built-in layout, so its joints have no "
            f"names to match; the unified skeleton reads {', '.join(sorted(LAYOUTS))}")
    return layout


def presence(x: np.ndarray, layout: str) -> np.ndarray:
    """(..., J) bool: joints present in each frame of root-relative joints ``x`` (..., J, 3).

    A non-root joint at exactly the root in a frame is a missing joint (see the module text).
    """
    present = np.any(x != 0, axis=-1)
    present[..., get_layout(layout).root] = True
    return present


def to_unified(x: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Root-relative joints (..., J, 3) of ``layout`` -> (..., U, 3) coordinates relative to the
    hip mid-point and a (..., U) bool presence mask (absent slots are zero)."""
    check_layout(layout)
    x = np.asarray(x, dtype=np.float32)
    names = canonical_names(layout)
    present = presence(x, layout)
    hips = 0.5 * (x[..., names.index("l_hip"), :] + x[..., names.index("r_hip"), :])
    rel = (x - hips[..., None, :]) * present[..., None]
    out = np.zeros(x.shape[:-2] + (NUM_UNIFIED, 3), np.float32)
    mask = np.zeros(x.shape[:-2] + (NUM_UNIFIED,), bool)
    slots = unified_slots(layout)
    out[..., slots, :] = rel
    mask[..., slots] = present
    return out, mask
