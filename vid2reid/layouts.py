"""Joint layouts: joint names and the root joint of each skeleton format.

A layout name is stored with every sequence so that later stages know what the
joints mean. Unknown layouts still work for SimMC (any J is fine; joint 0 is
the root), but methods that need body parts ask for a known layout.
"""

from __future__ import annotations

from dataclasses import dataclass

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
