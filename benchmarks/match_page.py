"""Check the ranked-results page of ``vid2reid match --report`` in a real browser.

One command (after the quickstart, which makes ``runs/quickstart`` and ``skeletons-samples``):

    python benchmarks/match_page.py [--run runs/quickstart] [--gallery skeletons-samples]
        [--out match-page] [QUERY ...]

Runs ``vid2reid match`` (queries default to two new people's sample clips, against the test
gallery's Normal walks, top 5) with ``--report OUT/page``, checks that every image the page
references exists and decodes, then opens ``OUT/page/index.html`` from disk in headless
Chromium and saves ``OUT/screenshot.png`` (1400 x 1000) to look at. Prints what it checked and
how long each step took. Without a ``chromium`` (or ``chromium-browser``) on PATH the browser
step is skipped with a message (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

QUERIES = ["sample_videos/075-bg-01-090.avi", "sample_videos/078-cl-01-090.avi"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("queries", nargs="*", default=QUERIES)
    ap.add_argument("--run", default="runs/quickstart")
    ap.add_argument("--gallery", default="skeletons-samples")
    ap.add_argument("--gallery-split", default="test")
    ap.add_argument("--gallery-condition", default="nm")
    ap.add_argument("--out", default="match-page")
    ap.add_argument("--top", default="5")
    args = ap.parse_args()
    out = Path(args.out)
    page = out / "page"
    cmd = [sys.executable, "-m", "vid2reid", "match", *args.queries, "--gallery", args.gallery,
           "--run", args.run, "--top", args.top, "--report", str(page),
           "--cache", str(out / "cache")]
    if args.gallery_split:
        cmd += ["--gallery-split", args.gallery_split]
    if args.gallery_condition:
        cmd += ["--gallery-condition", args.gallery_condition]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    print(f"vid2reid match: exit {res.returncode} in {time.perf_counter() - t0:.1f} s")
    print(res.stdout[-3000:], res.stderr[-2000:] if res.returncode else "", sep="")
    index = page / "index.html"
    if not index.is_file():
        print(f"no page at {index}")
        return 1
    import cv2

    srcs = re.findall(r'<img[^>]* src="([^"]+)"', index.read_text())
    bad = [s for s in srcs if cv2.imread(str(page / s)) is None]
    print(f"page: {len(srcs)} images referenced, {len(bad)} missing or unreadable {bad[:3]}")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium not found: browser check skipped (apt-get install chromium)")
        return 1 if bad else 0
    shot = out / "screenshot.png"
    t0 = time.perf_counter()
    res = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", "--no-first-run", f"--screenshot={shot.resolve()}",
                          "--window-size=1400,1000", index.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    print(f"chromium: exit {res.returncode} in {time.perf_counter() - t0:.1f} s; screenshot "
          f"{shot} ({shot.stat().st_size if shot.is_file() else 0} bytes)")
    return 1 if bad or not shot.is_file() else 0


if __name__ == "__main__":
    sys.exit(main())
