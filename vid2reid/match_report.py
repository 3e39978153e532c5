"""What ``vid2reid match`` shows: the ranked-results page (``--report DIR``) and the table, CSV
and JSON forms of its results.

``DIR/index.html`` opens from disk with no network: one row per query, the query
first, then its top matches, each walk a short strip of frames. Where the walk's
store records its video (``source`` and ``start_frame``, as ``vid2reid extract``
writes them) the strip shows those frames, cropped around the walker with the 2D
skeleton drawn (``keypoints_2d`` in the sequence file); a store without 2D
keypoints gets the frames and the 3D skeleton beside them; a store without a video
(Kinect data sets, imports) gets the 3D skeleton alone. Thumbnails are JPEG files
in ``DIR/thumbs/``. Borders are green (same subject) or red (another) only where
both manifests name the subject, and the page says that these identities were not
used for ranking.
"""

from __future__ import annotations

import csv
import html
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from vid2reid.errors import Vid2ReidError
from vid2reid.run.embed import has_identity
from vid2reid.safepath import inside, is_inside
from vid2reid.search import QueryResult
from vid2reid.store import atomic_write_bytes, spreadsheet_cell

log = logging.getLogger(__name__)
STRIP_HEIGHT = 112
LAYOUT_2D = {33: "blazepose-33", 17: "coco-17"}


def _within(path: Path, root: Path | str) -> bool:
    """Whether ``path`` is the file ``root`` or lies inside the folder ``root`` (links followed)."""
    root = Path(root)
    if root.is_dir():
        return is_inside(root, path)
    try:
        return path.resolve() == root.resolve()
    except (OSError, RuntimeError, ValueError):
        return False


def _find_video(source: str, store: Path, allowed: Sequence[Path | str] = ()) -> Path | None:
    """The walk's video: as recorded (relative to the working folder), else next to the store;
    read only when it lies inside the store or is (inside) a query the user named, ``allowed``
    (the containment rule of vid2reid.safepath: a manifest or an index must not make a page
    show a file from anywhere on the disk). None, with a warning, when refused."""
    if not source or "\0" in source:
        return None
    cands = [Path(source)] if Path(source).is_absolute() else \
        [Path(source), store / source, store.parent / source]
    refused = None
    for cand in cands:
        if cand.is_file():
            if any(_within(cand, root) for root in (store, *allowed)):
                return cand
            refused = refused or cand
    if refused is not None:
        log.warning("%s: video %s lies outside the store and is no query; not read (name its "
                    "folder with 'match --videos' to see its frames)", store, refused)
    return None


def _read_frames(video: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """Frames ``wanted`` (indices) of a video, decoded in order (exact for any codec)."""
    cap = cv2.VideoCapture(str(video))
    out: dict[int, np.ndarray] = {}
    try:
        if not cap.isOpened():
            return out
        last = max(wanted)
        want = set(wanted)
        for t in range(last + 1):
            ok = cap.grab()
            if not ok:
                break
            if t in want:
                ok, frame = cap.retrieve()
                if ok:
                    out[t] = frame
    finally:
        cap.release()
    return out


def _fit(img: np.ndarray, height: int) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def _placeholder(text: str, height: int = STRIP_HEIGHT) -> np.ndarray:
    img = np.full((height, 2 * height, 3), 40, np.uint8)
    cv2.putText(img, text, (6, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 200, 200), 1,
                cv2.LINE_AA)
    return img


def walk_strip(row: dict, start: int = 0, length: int | None = None, frames: int = 4,
               height: int = STRIP_HEIGHT, allowed: Sequence[Path | str] = ()
               ) -> tuple[np.ndarray, str]:
    """A strip of ``frames`` pictures of one walk (rows ``start..start+length`` of its file),
    and what it shows: "video+skeleton", "video+3d", "skeleton" or "missing". Its file and
    video are read only inside its store (or ``allowed``, the queries named; see _find_video)."""
    from vid2reid.pose.visualize import draw_3d_panel, draw_skeleton

    store = Path(row.get("store", ""))
    try:
        path = inside(store, row.get("path", ""), f"{store}: walk")
    except Vid2ReidError as exc:  # an index or manifest row naming a file outside its store
        log.warning("%s; not shown", exc)
        return _placeholder("walk file refused", height), "missing"
    try:
        with np.load(path, allow_pickle=False) as data:
            joints = np.asarray(data["joints"], np.float32)
            layout = str(data["layout"]) if "layout" in data.files else ""
            kp = np.asarray(data["keypoints_2d"], np.float32) if "keypoints_2d" in data.files \
                else None
    except Exception:
        return _placeholder("walk file not found", height), "missing"
    end = len(joints) if length is None else min(len(joints), start + length)
    ts = sorted(set(np.linspace(start, max(start, end - 1), frames).round().astype(int).tolist()))
    from vid2reid.layouts import root_joint

    try:
        root = root_joint(layout)
    except Exception:
        root = 0
    rel = joints[start:end] - joints[start:end, root:root + 1]
    extent = float(np.abs(rel).max()) if rel.size else 1.0
    video = _find_video(row.get("source") or row.get("video", ""), store, allowed)
    try:
        first = int(float(row.get("start_frame") or 0))
    except ValueError:
        first = 0
    pics: list[np.ndarray] = []
    if video is not None:
        got = _read_frames(video, [first + t for t in ts])
        if got:
            if kp is not None and kp.shape[0] == len(joints):
                layout_2d = LAYOUT_2D.get(kp.shape[1], "")
                pics = [_crop_on_walker(draw_skeleton(got[first + t], kp[t], layout_2d), kp[t])
                        for t in ts if first + t in got]
                kind = "video+skeleton"
            else:
                mid = ts[len(ts) // 2]
                pics = [got[first + t] for t in ts[:2] if first + t in got]
                pics.append(draw_3d_panel(joints[mid], layout, pics[0].shape[0], extent))
                kind = "video+3d"
            return np.hstack([_fit(p, height) for p in pics]), kind
    return np.hstack([skeleton_panel(joints, t, layout, height) for t in ts]), "skeleton"


def _bones(layout: str, num_joints: int) -> tuple[tuple[int, int], ...]:
    from vid2reid.layouts import layout_bones

    return tuple((a, b) for a, b in layout_bones(layout) if a < num_joints and b < num_joints)


def skeleton_panel(joints: np.ndarray, t: int, layout: str, height: int) -> np.ndarray:
    """Frame ``t`` of a walk (T, J, 3) drawn as a stick figure, upright, without a video.

    Stores use different axes (camera-style y down, Kinect y up), so the vertical axis is the
    one along which the walk's root-relative joints spread most, pointed so that more joints
    lie above the root than below (head, arms and trunk outnumber the legs in every layout);
    the horizontal axis is the other one along which joints move most over time (legs and
    arms swing along the walking direction), so walks are seen from the side. The scale is the same for every frame of the walk.
    """
    from vid2reid.layouts import root_joint

    try:
        root = root_joint(layout)
    except Exception:
        root = 0
    rel = joints - joints[:, root:root + 1]
    spread = rel.reshape(-1, 3).std(0)
    v = int(np.argmax(spread))
    swing = rel.std(axis=0).mean(axis=0)  # per axis: how much joints move during the walk
    h = int([a for a in np.argsort(-swing) if a != v][0])  # the walking direction: a side view
    up = 1.0 if (rel[..., v] > 0).sum() >= (rel[..., v] < 0).sum() else -1.0
    extent = float(np.abs(rel[..., [v, h]]).max()) or 1.0
    width = int(height * 0.6)
    img = np.full((height, width, 3), 32, np.uint8)
    scale = 0.45 * height / extent
    uv = np.stack([width / 2 + scale * rel[t, :, h], height / 2 - up * scale * rel[t, :, v]], 1)
    for a, b in _bones(layout, len(uv)):
        cv2.line(img, tuple(int(x) for x in uv[a]), tuple(int(x) for x in uv[b]), (80, 220, 80),
                 2, cv2.LINE_AA)
    for p in uv:
        cv2.circle(img, (int(p[0]), int(p[1])), 2, (60, 60, 255), -1, cv2.LINE_AA)
    return img


def _crop_on_walker(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The part of ``frame`` around the keypoints (K, 2), padded, at least half as wide as
    tall (the whole frame when no keypoint is known)."""
    pts = points[np.isfinite(points).all(1)]
    if not len(pts):
        return frame
    h, w = frame.shape[:2]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    bh = max(y1 - y0, 8.0) * 1.3
    bw = max(x1 - x0 + 0.3 * bh, 0.55 * bh)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    xa, xb = int(max(0, cx - bw / 2)), int(min(w, cx + bw / 2))
    ya, yb = int(max(0, cy - bh / 2)), int(min(h, cy + bh / 2))
    return frame[ya:yb, xa:xb] if xb > xa and yb > ya else frame


def caption(row: dict, path: str, extra: str = "") -> str:
    """A walk's caption: its path, and subject/condition-sequence/view where named."""
    who = row.get("subject", "") if has_identity(row) else ""
    cs = "-".join(x for x in (row.get("condition", ""), row.get("sequence", "")) if x)
    bits = [b for b in (f"subject {who}" if who else "", cs, row.get("view", "")) if b]
    return (f"{extra}<span class=path>{html.escape(path)}</span>"
            + (f"<br>{html.escape(' '.join(bits))}" if bits else ""))


STYLE = """
body { font-family: sans-serif; margin: 16px; background: #fafafa; color: #222; }
table { border-collapse: separate; border-spacing: 6px; }
td { vertical-align: top; }
figure { margin: 0; font-size: 11px; max-width: 214px; }
img { display: block; border: 4px solid #999; max-width: 204px; }
img.query { border-color: #3366cc; }
img.same { border-color: #1a9a3a; }
img.other { border-color: #cc2222; }
.path { color: #555; word-break: break-all; }
.d { font-weight: bold; font-size: 12px; }
.note { background: #eef; padding: 6px; display: inline-block; }
"""


def write_match_report(results: list[QueryResult], out_dir: Path | str, frames: int = 4,
                       title: str = "vid2reid match", window: int | None = None,
                       force: bool = False, videos: Sequence[Path | str] = ()) -> Path:
    """Write ``out_dir/index.html`` and its thumbnails (``out_dir/thumbs/*.jpg``); returns
    the page's path. ``window``: frames per window, for window-level results. A folder of
    files vid2reid did not write is refused unless ``force``; ``videos``: the query files and
    folders the user named, whose videos may be shown besides those inside a walk's store."""
    from vid2reid.locks import claim_output
    from vid2reid.safepath import MATCH_REPORT

    with claim_output(out_dir, MATCH_REPORT, force, "--report"):
        return _write_match_report(results, out_dir, frames, title, window, videos)


def _write_match_report(results: list[QueryResult], out_dir: Path | str, frames: int,
                        title: str, window: int | None, videos: Sequence[Path | str]) -> Path:
    out = Path(out_dir)
    thumbs = out / "thumbs"
    any_ids = any(r.subject and m.subject for r in results for m in r.matches)
    rows_html = []
    cache: dict[tuple, str] = {}

    def thumb(row: dict, start: int | None, name: str) -> str:
        key = (row.get("store"), row.get("path"), start)
        if key not in cache:
            img, _ = walk_strip(row, start or 0, None if start is None else window,
                                frames, allowed=videos)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                raise ValueError(f"{name}: JPEG encoding failed")
            atomic_write_bytes(thumbs / name, buf.tobytes())
            cache[key] = f"thumbs/{name}"
        return cache[key]

    for qi, res in enumerate(results):
        src = thumb(res.row, res.window_start, f"q{qi:04d}.jpg")
        at = "" if res.window_start is None else f"window at frame {res.window_start}<br>"
        margin = ("" if res.margin is None else
                  f"<br>margin {res.margin:.4f} (nearest {html.escape(res.margin_to)} minus "
                  f"rank 1)")
        excl = (f"<br>{res.excluded} identical walk(s) left out" if res.excluded else "")
        cells = [f"<td><figure><img class=query src=\"{src}\" alt=\"query {qi + 1}\">"
                 f"<figcaption><b>query {qi + 1}</b><br>{_verdict_html(res)}{at}"
                 f"{caption(res.row, res.path)}{margin}{excl}</figcaption>"
                 f"</figure></td>"]
        for m in res.matches:
            src = thumb(m.row, m.window_start, f"q{qi:04d}-r{m.rank:02d}.jpg")
            cls = ""
            if res.subject and m.subject:
                cls = " class=same" if res.subject == m.subject else " class=other"
            at = "" if m.window_start is None else f"window at frame {m.window_start}<br>"
            cells.append(f"<td><figure><img{cls} src=\"{src}\" alt=\"rank {m.rank}\">"
                         f"<figcaption><span class=d>#{m.rank} distance {m.distance:.4f}</span>"
                         f"<br>{at}{caption(m.row, m.path)}</figcaption></figure></td>")
        rows_html.append("<tr>" + "".join(cells) + "</tr>")
    legend = ("<p class=note>Borders: <b style=\"color:#1a9a3a\">green</b> = same subject, "
              "<b style=\"color:#cc2222\">red</b> = another subject, "
              "<b>identities from the manifest, not used for ranking</b>; grey where a walk "
              "names no subject. Blue: the query.</p>" if any_ids else
              "<p class=note>No borders by identity: the query or the gallery names no subject."
              "</p>")
    page = (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>Each row: a query walk, then the gallery walks nearest to it, best first. "
            f"Distance: Euclidean distance between the run's features (smaller = more alike; "
            f"not a probability). Pictures: frames of the walk's video with the estimated "
            f"skeleton, or the 3D skeleton alone where the store records no video. Verdict: "
            f"<b>known</b> when the rank-1 distance is within the open-set threshold (set from "
            f"the gallery's own distances, no labels, unless given), else <b>nobody in the "
            f"gallery</b>; score = rank-1 distance / threshold.</p>\n"
            f"{legend}\n<table>\n" + "\n".join(rows_html) + "\n</table>\n</body></html>\n")
    index = out / "index.html"
    atomic_write_bytes(index, page.encode())
    return index


def verdict(res: QueryResult) -> str:
    """The open-set verdict in words: "known", "nobody in the gallery" or "no threshold"."""
    if res.known is None:
        return "no threshold"
    return "known" if res.known else "nobody in the gallery"


def _verdict_html(res: QueryResult) -> str:
    colour = {"known": "#1a9a3a", "nobody in the gallery": "#cc2222"}.get(verdict(res), "#555")
    score = "" if res.score is None else f" (score {res.score:.2f})"
    return f"<b style=\"color:{colour}\">{html.escape(verdict(res))}</b>{score}<br>"


# Text, CSV and JSON forms of the ranked matches (the terminal's and programs' view)


def _describe_row(row: dict) -> str:
    bits = [row.get("subject", ""), "-".join(x for x in (row.get("condition", ""),
                                                         row.get("sequence", "")) if x),
            row.get("view", "")]
    return " ".join(b for b in bits if b)


def format_results(results: list[QueryResult], level: str = "sequence") -> str:
    """A readable table per query: rank, distance, subject/condition, path."""
    lines = []
    for res in results:
        where = f" window at frame {res.window_start}" if res.window_start is not None else ""
        who = f" (manifest: {_describe_row(res.row)})" if res.subject else ""
        lines.append(f"query {res.path}{where}{who}")
        score = "" if res.score is None else (f" (score {res.score:.2f}: rank-1 distance / "
                                              f"threshold, under 1 is known)")
        lines.append(f"  verdict: {verdict(res)}{score}")
        if res.excluded:
            lines.append(f"  {res.excluded} gallery walk(s) identical to the query left out")
        lines.append(f"  {'rank':>4} {'distance':>9}  {'subject':<8} {'cond-seq':<9} {'view':<5} path")
        for m in res.matches:
            cs = "-".join(x for x in (m.row.get("condition", ""), m.row.get("sequence", "")) if x)
            at = f" @{m.window_start}" if m.window_start is not None else ""
            lines.append(f"  {m.rank:>4} {m.distance:>9.4f}  {m.row.get('subject', '') or '-':<8} "
                         f"{cs or '-':<9} {m.row.get('view', '') or '-':<5} {m.path}{at}")
        if res.margin is not None:
            lines.append(f"  margin {res.margin:.4f}: the nearest {res.margin_to} is that much "
                         f"farther than rank 1")
    return "\n".join(lines)


CSV_COLUMNS = ("query", "rank", "gallery", "distance", "margin", "margin_to", "query_subject",
               "gallery_subject", "gallery_condition", "gallery_sequence", "gallery_view",
               "query_window_start", "gallery_window_start", "known", "score")


class SpreadsheetDictWriter(csv.DictWriter):
    """A csv.DictWriter whose cells cannot run in a spreadsheet: manifest text starting with
    = + - @ gets a leading ' (vid2reid.store.spreadsheet_cell); numbers are left alone."""

    def writerow(self, rowdict: Mapping[str, object]) -> object:
        return super().writerow({k: spreadsheet_cell(v) for k, v in rowdict.items()})


def results_csv(results: list[QueryResult]) -> str:
    """One row per (query, rank); ``query``/``gallery`` are paths as the manifests write them."""
    out = io.StringIO()
    w = SpreadsheetDictWriter(out, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    w.writeheader()
    for res in results:
        for m in res.matches:
            w.writerow(dict(query=res.path, rank=m.rank, gallery=m.path,
                            distance=f"{m.distance:.6g}",
                            margin="" if res.margin is None or m.rank != 1 else f"{res.margin:.6g}",
                            margin_to=res.margin_to if m.rank == 1 else "",
                            query_subject=res.subject, gallery_subject=m.subject,
                            gallery_condition=m.row.get("condition", ""),
                            gallery_sequence=m.row.get("sequence", ""),
                            gallery_view=m.row.get("view", ""),
                            query_window_start="" if res.window_start is None else res.window_start,
                            gallery_window_start="" if m.window_start is None else m.window_start,
                            known="" if res.known is None else ("yes" if res.known else "no"),
                            score="" if res.score is None else f"{res.score:.6g}"))
    return out.getvalue()


def results_json(results: list[QueryResult], info: dict | None = None) -> dict:
    """JSON-ready results: per query its path, subject, margin and ranked matches."""
    return {**(info or {}), "queries": [
        {"query": r.path, "query_subject": r.subject, "query_window_start": r.window_start,
         "excluded_identical": r.excluded, "margin": r.margin, "margin_to": r.margin_to,
         "known": r.known, "verdict": verdict(r), "score": r.score,
         "matches": [{"rank": m.rank, "gallery": m.path, "distance": m.distance,
                      "subject": m.subject, "condition": m.row.get("condition", ""),
                      "sequence": m.row.get("sequence", ""), "view": m.row.get("view", ""),
                      "window_start": m.window_start} for m in r.matches]}
        for r in results]}


def write_text(path: Path | str, text: str) -> Path:
    """Atomic text write."""
    atomic_write_bytes(Path(path), text.encode())
    return Path(path)
