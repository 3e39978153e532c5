"""``python -m vid2reid.pose.check_install``: say which pose backends can run here, and why not."""

from __future__ import annotations

import sys


def check() -> list[tuple[str, bool, str]]:
    """(component, works, detail) for the MMPose stack and MediaPipe."""
    rows = []
    try:
        from vid2reid.pose.compat import has_compiled_mmcv_ops, import_mmpose_apis

        import_mmpose_apis()
        import mmpose

        ops = "full mmcv (compiled ops)" if has_compiled_mmcv_ops() else "mmcv-lite (no compiled ops; fine)"
        rows.append(("mmpose", True, f"mmpose {mmpose.__version__}, {ops}"))
    except Exception as exc:  # report, never crash setup
        rows.append(("mmpose", False, str(exc)))
    try:
        from vid2reid.pose.mediapipe_backend import _import_pose

        _import_pose()
        import mediapipe

        rows.append(("mediapipe", True, f"mediapipe {mediapipe.__version__} (BlazePose weights in wheel)"))
    except Exception as exc:
        rows.append(("mediapipe", False, str(exc)))
    return rows


def main() -> int:
    rows = check()
    for name, ok, detail in rows:
        print(f"[check] {name:9s} {'ok ' if ok else 'NOT AVAILABLE'} {detail}")
    return 0 if any(ok for _, ok, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
