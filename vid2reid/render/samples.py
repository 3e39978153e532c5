"""Make CASIA-B style sample videos with ground-truth sidecars, and import the sidecars as a store.

Layout written by ``make_samples`` (one flat folder, CASIA-B names):

- ``SSS-CC-NN-VVV.avi``: 320x240, 25 fps, one walker crossing a static room;
  every walk ``SSS-CC-NN`` is filmed from all views at once, as in CASIA-B.
- ``SSS-bkgrd-VVV.avi``: the empty room for that view.
- ``SSS-CC-NN-VVV.gt.npz``: ground truth: ``joints`` (T, 17, 3) float32 in the
  camera frame (OpenCV axes: x right, y down, z forward; metres), ``layout``
  "h36m-17", camera ``K``, ``R``, ``t`` (world = R.T @ (cam - t); world: x
  walking direction, y up, floor at 0; pixels = project with K),
  ``visible`` (T,) frames with every joint inside the image, and gait numbers.

Everything is a function of the seed: the same seed gives the same bytes (with
the same encoder library version).
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vid2reid.errors import StoreError, Vid2ReidError
from vid2reid.render import draw as D
from vid2reid.render import walker as W
from vid2reid.store import (Record, atomic_write_bytes, save_sequence, umask_file_mode,
                            write_manifest)

log = logging.getLogger(__name__)

FPS = 25.0
CONDITIONS = (("nm", 6), ("bg", 2), ("cl", 2))  # as CASIA-B: nm-01..06, bg-01..02, cl-01..02
FIRST_TEST_SUBJECT = 75  # a test subject under both CASIA-B protocols (simmc 063-, opengait 075-)
BACKGROUND_FRAMES = 25
_COND_CODE = {"nm": 1, "bg": 2, "cl": 3}


class RenderError(Vid2ReidError):
    """Sample videos cannot be made (bad options, a video that cannot be written)."""


def encoder_name() -> str:
    """Which encoder ``write_video`` uses here: PyAV MPEG-4 (small files) or OpenCV mp4v."""
    try:
        import av  # noqa: F401
    except ImportError:
        return "opencv-mp4v"
    return f"pyav-{av.__version__}-libx264-crf23"


def bgr_to_i420(frame: np.ndarray) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> planar YUV 4:2:0 (H * 3 / 2, W), BT.601 studio range.

    Integer arithmetic in numpy, so the encoder's input never depends on which
    SIMD path a colour converter happens to take (that made rare 1-LSB
    differences between otherwise identical runs).
    """
    h, w = frame.shape[:2]
    b, g, r = (frame[..., i].astype(np.int32) for i in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    r2, g2, b2 = (c.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3)) for c in (r, g, b))
    u = ((-38 * r2 - 74 * g2 + 112 * b2 + 512) >> 10) + 128
    v = ((112 * r2 - 94 * g2 - 18 * b2 + 512) >> 10) + 128
    return np.concatenate([y.ravel(), u.ravel(), v.ravel()]).astype(np.uint8).reshape(h * 3 // 2, w)


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = FPS) -> None:
    """Atomically write BGR frames as an AVI that OpenCV reads back.

    PyAV, when installed, encodes H.264 at constant quality (CRF 23: about 3x
    smaller than OpenCV's mp4v at the same pixel error); otherwise OpenCV
    writes MPEG-4 Part 2 (mp4v, as CASIA-B). Both run single-threaded, hence
    byte-for-byte reproducible.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.avi")
    os.close(fd)
    try:
        try:
            import av
        except ImportError:
            av = None
        if av is not None:
            with av.open(tmp, "w", format="avi") as container:
                stream = container.add_stream("libx264", rate=int(round(fps)))
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.thread_count = 1
                stream.options = {"crf": "23", "preset": "medium", "threads": "1"}
                for frame in frames:
                    yuv = av.VideoFrame.from_ndarray(bgr_to_i420(frame), format="yuv420p")
                    for packet in stream.encode(yuv):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
        else:
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            if not writer.isOpened():
                raise RenderError(f"{path}: OpenCV cannot open an mp4v video writer here")
            for frame in frames:
                writer.write(frame)
            writer.release()
        os.chmod(tmp, umask_file_mode())  # mkstemp makes 0600; videos are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed ``.npz`` with fixed zip timestamps, so equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w") as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def clip_name(subject: int, condition: str, sequence: int, view: str) -> str:
    """CASIA-B file stem, e.g. ``001-bg-02-090``."""
    return f"{subject:03d}-{condition}-{sequence:02d}-{view}"


def _check_views(views: Sequence[str]) -> list[str]:
    out = []
    for v in views:
        v = str(v).strip()
        if not v.isdigit() or not 0 <= int(v) <= 180:
            raise RenderError(f"view {v!r}: expected an angle 000..180 (CASIA-B uses 000, 018, ..., 180)")
        out.append(f"{int(v):03d}")
    return out


def render_walk(walk: W.Walk, view: str, frames: int, start_x: float, brightness: float,
                bg: np.ndarray | None = None) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Frames of one walk from one view, and its ground-truth sidecar arrays."""
    cam = D.view_camera(view)
    if bg is None:
        bg = D.background(cam, brightness)
    geo = W.walk_frames(walk, frames, FPS, start_x)
    images = [D.draw_walker(bg, geo.joints[t], geo.foot_pitch[t], walk, cam) for t in range(frames)]
    uv, z = cam.project(geo.joints)
    margin = 4.0
    visible = ((uv[..., 0] > margin) & (uv[..., 0] < D.WIDTH - margin) & (uv[..., 1] > margin)
               & (uv[..., 1] < D.HEIGHT - margin) & (z > 0)).all(axis=1)
    sidecar = {
        "joints": cam.to_camera(geo.joints).astype(np.float32),
        "layout": np.array(W.LAYOUT),
        "K": cam.K, "R": cam.R, "t": cam.t, "fps": np.array(FPS),
        "visible": visible,
        "speed": np.array(geo.speed), "cadence": np.array(geo.cadence),
        "height": np.array(walk.identity.height),
    }
    return images, sidecar


def subject_numbers(n_subjects: int, n_test_subjects: int = 0,
                    first_test_subject: int = FIRST_TEST_SUBJECT) -> list[int]:
    """Training identities ``1..n_subjects``, then test identities from ``first_test_subject``.

    Numbered like CASIA-B so that the standard protocols split them without a
    split column: 001-062 train / 063-124 test under ``simmc``, 001-074 /
    075-124 under ``opengait``. Test identities start at 075, a test subject
    under both.
    """
    if n_subjects < 1 or n_subjects > 999:
        raise RenderError(f"--subjects {n_subjects}: expected 1..999")
    if n_test_subjects < 0:
        raise RenderError(f"--test-subjects {n_test_subjects}: expected 0 or more")
    if n_test_subjects and n_subjects >= first_test_subject:
        raise RenderError(f"--subjects {n_subjects}: training identities are numbered 001.."
                          f"{first_test_subject - 1:03d} when there are test identities "
                          f"(numbered from {first_test_subject:03d})")
    if first_test_subject + n_test_subjects - 1 > 999:
        raise RenderError(f"--test-subjects {n_test_subjects}: numbers would pass 999")
    return list(range(1, n_subjects + 1)) + list(
        range(first_test_subject, first_test_subject + n_test_subjects))


def plan_walks(seed: int, subject: int, frames: int,
               conditions: Sequence[tuple[str, int]] = CONDITIONS
               ) -> tuple[W.Identity, float, list[tuple[str, int, W.Walk, float]]]:
    """One identity's person, room brightness and walks ``(condition, number, walk, start_x)``.

    A function of (seed, subject number) only, so a subject looks the same in
    every sample set rendered with that seed.
    """
    ident = W.make_identity(np.random.default_rng([seed, subject]))
    brightness = float(np.random.default_rng([seed, subject, 0]).uniform(0.92, 1.06))
    walks = []
    for cond, count in conditions:
        for n in range(1, count + 1):
            rng = np.random.default_rng([seed, subject, _COND_CODE.get(cond, 9), n])
            walk = W.make_walk(ident, cond, rng)
            duration = frames / FPS
            speed = W.walk_frames(walk, 2, FPS).speed
            start_x = -0.5 * speed * duration + float(rng.normal(0, 0.1))
            walks.append((cond, n, walk, start_x))
    return ident, brightness, walks


def make_samples(out_dir: Path | str, n_subjects: int = 6, views: Sequence[str] = ("090", "054"),
                 frames: int = 64, seed: int = 0,
                 conditions: Sequence[tuple[str, int]] = CONDITIONS,
                 n_test_subjects: int = 0,
                 first_test_subject: int = FIRST_TEST_SUBJECT) -> list[Path]:
    """Render identities x conditions x views as CASIA-B clips with ground-truth sidecars.

    Identities ``001..n_subjects`` and, when ``n_test_subjects`` > 0, test
    identities numbered from ``first_test_subject`` (see
    :func:`subject_numbers`). Returns the written video paths (clips and
    background clips).
    """
    subjects = subject_numbers(n_subjects, n_test_subjects, first_test_subject)
    if frames < 2:
        raise RenderError(f"--frames {frames}: expected at least 2")
    views = _check_views(views)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    encoder = encoder_name()
    for s in subjects:
        _, brightness, walks = plan_walks(seed, s, frames, conditions)
        for view in views:
            bg = D.background(D.view_camera(view), brightness)
            bg_path = out_dir / f"{s:03d}-bkgrd-{view}.avi"
            write_video(bg_path, [bg] * BACKGROUND_FRAMES)
            written.append(bg_path)
            for cond, n, walk, start_x in walks:
                stem = clip_name(s, cond, n, view)
                images, sidecar = render_walk(walk, view, frames, start_x, brightness, bg)
                write_video(out_dir / f"{stem}.avi", images)
                sidecar.update(subject=np.array(f"{s:03d}"), condition=np.array(cond),
                               sequence=np.array(f"{n:02d}"), view=np.array(view),
                               seed=np.array(seed), encoder=np.array(encoder))
                atomic_write_bytes(out_dir / f"{stem}.gt.npz", npz_bytes(sidecar))
                written.append(out_dir / f"{stem}.avi")
            log.info("subject %03d view %s: %d clips", s, view, len(walks))
    return written


def synthesize_ground_truth(store_dir: Path | str, n_subjects: int, n_test_subjects: int = 0,
                            views: Sequence[str] = ("090",), frames: int = 64, seed: int = 0,
                            conditions: Sequence[tuple[str, int]] = CONDITIONS,
                            first_test_subject: int = FIRST_TEST_SUBJECT) -> list[Record]:
    """The skeleton store that :func:`import_ground_truth` would write for these samples,
    without drawing a pixel: the walkers' camera-frame joints, bit-identical to the
    sidecars' ``joints``. For experiments with many more identities than the
    bundled clips (how results depend on the number of people, clip length)."""
    subjects = subject_numbers(n_subjects, n_test_subjects, first_test_subject)
    views = _check_views(views)
    records = []
    for s in subjects:
        _, _, walks = plan_walks(seed, s, frames, conditions)
        for view in views:
            cam = D.view_camera(view)
            for cond, n, walk, start_x in walks:
                geo = W.walk_frames(walk, frames, FPS, start_x)
                joints = cam.to_camera(geo.joints).astype(np.float32)
                stem = clip_name(s, cond, n, view)
                records.append(save_sequence(store_dir, f"{s:03d}/{stem}.npz", joints, W.LAYOUT,
                                             source="ground-truth", subject=f"{s:03d}",
                                             condition=cond, sequence=f"{n:02d}", view=view))
    write_manifest(store_dir, records)
    return records


def import_ground_truth(sample_dir: Path | str, store_dir: Path | str) -> list[Record]:
    """Write a skeleton store (layout h36m-17, camera frame) from the ``*.gt.npz`` sidecars.

    This is the reference run: what re-ID achieves on perfect skeletons. A bad
    sidecar is logged (naming the file) and skipped; none at all is an error.
    """
    sample_dir = Path(sample_dir)
    files = sorted(sample_dir.glob("*.gt.npz"))
    if not files:
        raise StoreError(f"{sample_dir}: no ground-truth sidecars (*.gt.npz) found")
    records = []
    for f in files:
        try:
            with np.load(f) as z:
                joints = np.asarray(z["joints"], dtype=np.float32)
                meta = {k: str(z[k]) for k in ("subject", "condition", "sequence", "view")}
                layout = str(z["layout"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            log.error("%s: unreadable ground-truth sidecar (%s); skipped", f, exc)
            continue
        stem = f.name[: -len(".gt.npz")]
        try:
            records.append(save_sequence(store_dir, f"{meta['subject']}/{stem}.npz", joints, layout,
                                         source="ground-truth", **meta))
        except StoreError as exc:
            log.error("%s; skipped", exc)
    if not records:
        raise StoreError(f"{sample_dir}: none of {len(files)} sidecars could be imported")
    write_manifest(store_dir, records)
    return records
