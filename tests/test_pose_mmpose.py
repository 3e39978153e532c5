"""The real MMPose code path (configs from pose_configs/, mmpose's own models and pipelines) with
random weights, since no checkpoint can be downloaded here. No part of MMPose is mocked."""

import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("mmpose")
pytest.importorskip("mmengine")

from vid2reid.errors import PoseError  # noqa: E402
from vid2reid.pose.compat import has_compiled_mmcv_ops, import_mmpose_apis  # noqa: E402
from vid2reid.pose.extract import ExtractSettings, run_extract  # noqa: E402
from vid2reid.pose.mmpose_backend import MMPoseBackend, MMPoseSettings  # noqa: E402
from vid2reid.store import load_joints, read_manifest  # noqa: E402

FAST = MMPoseSettings(lifter="videopose3d-27", allow_random_weights=True, batch_size=8)


def walker_video(path: Path, frames: int = 14, size=(128, 96)) -> Path:
    """A dark figure-like blob crossing a textured static background (MJPG avi)."""
    w, h = size
    rng = np.random.default_rng(0)
    bg = (rng.integers(150, 220, (h, w, 3))).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    for t in range(frames):
        img = bg.copy()
        x = 10 + 6 * t
        cv2.circle(img, (x + 8, 20), 7, (30, 30, 90), -1)
        cv2.rectangle(img, (x, 28), (x + 16, 62), (40, 40, 40), -1)
        cv2.line(img, (x + 4, 62), (x + 2 - (t % 4), 90), (40, 40, 40), 4)
        cv2.line(img, (x + 12, 62), (x + 14 + (t % 4), 90), (40, 40, 40), 4)
        writer.write(img)
    writer.release()
    return path


@pytest.fixture(scope="module")
def backend():
    return MMPoseBackend(FAST)


def test_mmpose_imports_without_compiled_ops_and_leaves_no_trace():
    apis = import_mmpose_apis()
    assert hasattr(apis, "init_model") and hasattr(apis, "inference_topdown")
    from mmengine.utils.dl_utils import mmcv_full_available

    if not has_compiled_mmcv_ops():
        assert "mmcv._ext" not in sys.modules  # placeholder only lived during the import
        assert not mmcv_full_available()


def test_random_weights_extract_writes_store_entry(tmp_path, backend):
    video = walker_video(tmp_path / "007-nm-03-126.avi")
    out = tmp_path / "store"
    s = ExtractSettings(out=out, backend="mmpose", min_frames=5, mmpose=FAST)
    summary = run_extract([video], s)
    assert summary.failed == 0, summary.lines()
    (rec,) = read_manifest(out)
    assert (rec.subject, rec.condition, rec.sequence, rec.view) == ("007", "nm", "03", "126")
    assert rec.layout == "h36m-17" and rec.path == "007/007-nm-03-126.npz"
    joints = load_joints(out, rec)
    assert joints.dtype == np.float32 and joints.shape == (rec.frames, 17, 3) and rec.frames >= 5
    assert np.isfinite(joints).all()
    extra = dict(rec.extra)
    assert extra["weights_2d"] == "random" and extra["lifter"] == "videopose3d-27"
    assert 0 < float(extra["video_detected_fraction"]) <= 1
    with np.load(out / rec.path) as data:
        assert str(data["layout"]) == "h36m-17" and str(data["subject"]) == "007"
        assert data["detected"].dtype == bool and data["detected"].shape == (rec.frames,)
        assert data["detected"][0] and data["detected"][-1]  # sequences start and end on detections
    assert "detected" not in extra


def test_batched_2d_matches_mmpose_inference_topdown(backend):
    apis = import_mmpose_apis()
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(3)]
    boxes = np.array([[10, 5, 60, 90], [40, 10, 100, 95], [0, 0, 128, 96]], np.float32)
    kpts, scores = backend.keypoints_2d(frames, boxes)
    for f, b, k, sc in zip(frames, boxes, kpts, scores):
        (ref,) = apis.inference_topdown(backend.model2d, f, b[None])
        np.testing.assert_allclose(k, ref.pred_instances.keypoints[0], atol=1e-3)
        np.testing.assert_allclose(sc, ref.pred_instances.keypoint_scores[0], atol=1e-4)


def test_lifter_batches_windows_per_frame(backend):
    rng = np.random.default_rng(2)
    T = 9
    k2 = rng.uniform(20, 100, (T, 17, 2)).astype(np.float32)
    boxes = np.tile(np.array([[10, 5, 110, 95]], np.float32), (T, 1))
    full = backend.lift(k2, boxes, (128, 96))
    assert full.shape == (T, 17, 3) and np.isfinite(full).all()
    # batching must not mix windows up: lifting in batches of 2 windows gives the same result
    small = MMPoseBackend.__new__(MMPoseBackend)
    small.__dict__.update(backend.__dict__)
    small.settings = replace(backend.settings, window_batch=2)
    np.testing.assert_allclose(small.lift(k2, boxes, (128, 96)), full, atol=1e-5)


def test_local_checkpoint_is_loaded(tmp_path, backend):
    import torch

    ckpt = tmp_path / "lifter.pth"
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in backend.model3d.state_dict().items()}
    torch.save({"state_dict": state, "meta": {"dataset_meta": backend.model3d.dataset_meta,
                                              "note": np.array([1.0])}}, ckpt)
    loaded = MMPoseBackend(replace(FAST, checkpoint_3d=str(ckpt)))
    assert loaded.describe()["weights_3d"] == str(ckpt)
    for k, v in loaded.model3d.state_dict().items():
        torch.testing.assert_close(v, state[k])
    with pytest.raises(PoseError, match="does not exist"):
        MMPoseBackend(replace(FAST, checkpoint_2d=str(tmp_path / "missing.pth")))


def test_offline_without_checkpoint_names_file_and_option(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached download
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens: offline for sure
    with pytest.raises(PoseError) as err:
        MMPoseBackend(MMPoseSettings(lifter="videopose3d-27"))
    msg = str(err.value)
    assert "rtmpose-m_simcc-coco" in msg and "--checkpoint-2d" in msg and "mediapipe" in msg


def test_rtmdet_boxes_need_compiled_ops(tmp_path):
    from vid2reid.errors import ConfigError
    from vid2reid.pose.boxes import make_box_finder

    if has_compiled_mmcv_ops():
        pytest.skip("full mmcv installed: the detector path is available")
    with pytest.raises(ConfigError, match="compiled ops"):
        make_box_finder("rtmdet", tmp_path / "v.avi")


def test_lifter_matches_mmpose_inference_pose_lifter_model(backend):
    """Our batched windows give what mmpose's own per-frame lifter call gives for that frame."""
    from mmengine.structures import InstanceData
    from mmpose.apis import convert_keypoint_definition, inference_pose_lifter_model
    from mmpose.structures import PoseDataSample

    rng = np.random.default_rng(3)
    T = 7
    k2 = rng.uniform(20, 100, (T, 17, 2)).astype(np.float32)
    boxes = np.stack([[10 + t, 5, 110 + t, 95] for t in range(T)]).astype(np.float32)
    ours = backend.lift(k2, boxes, (128, 96))
    h36m = convert_keypoint_definition(k2, "coco", "h36m")
    # Pose3DInferencer's 2D normalisation (bbox -> the dataset's mean bbox); mmpose's functional
    # norm_pose_2d=True path computes it in float64 and then fails in the float32 model
    stats = backend.model3d.dataset_meta["stats_info"]
    centre = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
    scale = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None, None]
    h36m = ((h36m - centre) / scale * stats["bbox_scale"] + stats["bbox_center"]).astype(np.float32)
    samples = []
    for t in range(T):
        ds = PoseDataSample()
        ds.pred_instances = InstanceData(keypoints=h36m[t][None], bboxes=boxes[t][None])
        ds.gt_instances = InstanceData()
        ds.track_id = 0
        samples.append([ds])
    half = (backend.seq_len - 1) // 2
    for t in (0, T // 2, T - 1):
        idx = np.clip(np.arange(t - half, t + half + 1), 0, T - 1)
        (ref,) = inference_pose_lifter_model(backend.model3d, [samples[i] for i in idx],
                                             with_track_id=False, image_size=(128, 96), norm_pose_2d=False)
        np.testing.assert_allclose(ours[t], np.asarray(ref.pred_instances.keypoints).reshape(17, 3),
                                   atol=1e-4)
