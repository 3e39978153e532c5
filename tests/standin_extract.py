"""``vid2reid extract`` with a fast stand-in pose backend, for tests of many processes.

Run as ``python tests/standin_extract.py extract VIDEOS --out STORE --backend mediapipe ...``:
everything is the real command (claims, workers, markers, fragments, manifest assembly)
except the pose model. The stand-in decodes every frame of the video (the real reader) and
makes 33 joints per frame from the frame's pixels, so each clip gets its own deterministic
sequence in well under a second. ``STANDIN_DELAY_S`` makes each video take that much
longer, so a test can kill a process while it holds a claim.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from vid2reid.pose import extract
from vid2reid.pose.result import Sequence3D, VideoPoses

JOINTS = 33


class StandInBackend:
    """Poses from pixels: the mean of each of 33 horizontal bands of a frame, as x, y, z."""

    name = "mediapipe"
    layout = "blazepose-33"
    layout_2d = "blazepose-33"

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "pose2d": "stand-in", "lifter": "stand-in"}

    def estimate_video(self, frames, box_finder=None, max_gap: int = 5,
                       min_frames: int = 1) -> VideoPoses:
        rows = []
        for frame in frames:
            bands = np.array_split(frame.astype(np.float32), JOINTS, axis=0)
            rows.append(np.stack([b.mean(axis=(0, 1)) / 255.0 for b in bands]))
        time.sleep(float(os.environ.get("STANDIN_DELAY_S", "0")))
        joints = np.stack(rows).astype(np.float32)
        t = len(joints)
        seqs = [Sequence3D(0, joints, np.ones(t, bool), 1.0)] if t >= min_frames else []
        return VideoPoses(frames=t, keypoints_2d=joints[:, :, :2] * 100,
                          scores_2d=np.ones((t, JOINTS), np.float32), valid=np.ones(t, bool),
                          sequences=seqs, layout=self.layout, layout_2d=self.layout_2d)


if __name__ == "__main__":
    extract.make_backend = lambda settings: StandInBackend()
    from vid2reid.cli import main

    sys.argv[0] = "vid2reid"
    sys.exit(main())
