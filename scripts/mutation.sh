#!/usr/bin/env bash
# Hand-written mutants: deliberate breakages of the product that the test suite must catch.
#
# Run before a release (not in CI; it takes several minutes):
#
#   bash scripts/mutation.sh            # every mutant
#   bash scripts/mutation.sh labels     # only mutants whose name contains "labels"
#
# Each mutant is applied to a temporary git worktree of HEAD (your checkout is never touched),
# then the tests that should catch it run there. A mutant is "killed" when those tests fail,
# "survived" when they pass (a hole in the suite: write the test that catches it). The score
# is killed / total. Uncommitted changes are not seen: commit first. docs/testing.md has the
# last score.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY="$REPO/.venv/bin/python"
WT=$(mktemp -d /tmp/vid2reid-mutation.XXXXXX)
git worktree add --detach -q "$WT" HEAD
trap 'git -C "$REPO" worktree remove --force "$WT" >/dev/null 2>&1 || rm -rf "$WT"' EXIT
# sample_videos/ and the like are tracked, so the worktree has everything the tests read

"$PY" - "$WT" "$PY" "${1:-}" <<'EOF'
import subprocess, sys, time
from pathlib import Path

wt, py, only = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

# (name, file, exact text, replacement, tests that must fail)
MUTANTS = [
    ("store: atomic write becomes a plain write", "vid2reid/store.py",
     "    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f\".{path.name}.\", suffix=\".tmp\")\n",
     "    path.write_bytes(data); return\n    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f\".{path.name}.\", suffix=\".tmp\")\n",
     ["tests/test_atomic_writes.py"]),
    ("store: the temporary file is left behind on failure", "vid2reid/store.py",
     "        Path(tmp).unlink(missing_ok=True)\n", "        pass\n",
     ["tests/test_atomic_writes.py"]),
    ("store: index_store without its lock (shards finishing together)", "vid2reid/store.py",
     "    with _manifest_lock(store_dir):", "    with contextlib.nullcontext():",
     ["tests/test_sharding.py"]),
    ("train: resume check turned off", "vid2reid/train.py",
     "        if key not in _RESUMABLE_CHANGES and was != value:\n",
     "        if False:\n",
     ["tests/test_resume.py"]),
    ("train: resume does not restore the numpy rng", "vid2reid/train.py",
     "            rng.bit_generator.state = ck[\"rng\"]\n", "            pass\n",
     ["tests/test_resume.py", "tests/test_train.py::test_resume_equals_uninterrupted_run"]),
    ("labels: training windows ordered by subject id", "vid2reid/train.py",
     "    recs = [store.records[i] for i in idx]\n",
     "    idx = sorted(idx, key=lambda i: store.records[i].subject)\n"
     "    recs = [store.records[i] for i in idx]\n",
     ["tests/test_no_labels.py"]),
    ("labels: test walks of the training people trained on", "vid2reid/train.py",
     "    idx = train_records(store.records, cfg.protocol)\n",
     "    idx = train_records(store.records, cfg.protocol)\n"
     "    _people = {store.records[i].subject for i in idx}\n"
     "    idx = [i for i, r in enumerate(store.records) if r.subject in _people]\n",
     ["tests/test_no_labels.py"]),
    ("data: training stride f instead of f // 2", "vid2reid/data.py",
     "        stride = max(1, f // 2)\n", "        stride = max(1, f)\n",
     ["tests/test_data.py"]),
    ("data: the last full window of a walk is dropped", "vid2reid/data.py",
     "    starts = np.arange(0, t - f + 1, stride)\n", "    starts = np.arange(0, t - f, stride)\n",
     ["tests/test_data.py"]),
    ("data: shifted offsets drawn from 0..f-1 instead of 0..f/2-1", "vid2reid/data.py",
     "            high = np.clip(self.length - f + 1, 1, stride)\n",
     "            high = np.clip(self.length - f + 1, 1, f)\n",
     ["tests/test_data.py"]),
    ("evaluate: test windows overlap (stride f // 2)", "vid2reid/evaluate.py",
     "        win = make_windows(recs, joints, f, stride=f)\n",
     "        win = make_windows(recs, joints, f, stride=max(1, f // 2))\n",
     ["tests/test_protocols.py", "tests/test_evaluate.py"]),
    ("evaluate: opengait also scores the probe's own view", "vid2reid/evaluate.py",
     "        for gv in sorted(set(g[\"view\"]) - {pv}):\n",
     "        for gv in sorted(set(g[\"view\"])):\n",
     ["tests/test_protocols.py"]),
    ("evaluate: opengait averages over all pairs at once", "vid2reid/evaluate.py",
     "            per_view.append([np.mean([getattr(m, k) for m in pairs])\n",
     "            per_view.extend([[getattr(m, k) for k in (\"top1\", \"top5\", \"top10\", \"mAP\")] for m in pairs[1:]])\n"
     "            per_view.append([np.mean([getattr(m, k) for m in pairs])\n",
     ["tests/test_protocols.py"]),
    ("protocols: simmc Normal probes overlap the gallery (nm-04..06)", "vid2reid/protocols.py",
     "_SIMMC_SPLIT = ((\"nm\", (1, 2, 3, 4), (5, 6)),",
     "_SIMMC_SPLIT = ((\"nm\", (1, 2, 3, 4), (4, 5, 6)),",
     ["tests/test_protocols.py"]),
    ("protocols: opengait trains on 001-062", "vid2reid/protocols.py",
     "    \"opengait\": Protocol(\"opengait\", last_train_subject=74,",
     "    \"opengait\": Protocol(\"opengait\", last_train_subject=62,",
     ["tests/test_protocols.py"]),
    ("protocols: test_idx ignored when picking probes", "vid2reid/protocols.py",
     "        return np.array([i for i in test_idx\n",
     "        return np.array([i for i in range(len(records))\n",
     ["tests/test_protocols.py"]),
    ("metrics: ties broken in the probe's favour", "vid2reid/metrics.py",
     "        hit = d.ravel()[amb][e] <= t[pa[e], j]\n", "        hit = d.ravel()[amb][e] < t[pa[e], j]\n",
     ["tests/test_metrics.py"]),
    ("metrics: own video not excluded", "vid2reid/metrics.py",
     "    own = ggr[idx] == pgr[:, None]", "    own = ggr[idx] != ggr[idx]",
     ["tests/test_metrics.py"]),
    ("metrics: probes without a match counted as misses", "vid2reid/metrics.py",
     "    return hits, ap[has].sum(), has.sum()\n",
     "    return hits, ap[has].sum(), torch.tensor(len(has))\n",
     ["tests/test_metrics.py"]),
    ("cluster: expansion threshold 1/3 instead of 2/3", "vid2reid/cluster.py",
     "    overlap.data = (overlap.data > 2 / 3 * size_h[overlap.indices])",
     "    overlap.data = (overlap.data > 1 / 3 * size_h[overlap.indices])",
     ["tests/test_cluster.py"]),
    ("cluster: R(i, k1/2) one neighbour narrower", "vid2reid/cluster.py",
     "    half = int(np.around(k1 / 2)) + 1\n", "    half = int(np.around(k1 / 2))\n",
     ["tests/test_cluster.py"]),
    ("cluster: prototypes averaged with one extra zero", "vid2reid/cluster.py",
     "    return sums / counts[:, None]\n", "    return sums / (counts[:, None] + 1)\n",
     ["tests/test_cluster.py"]),
    ("himpc: HSM weights detached (no gradient through the weights)", "vid2reid/himpc.py",
     "    return (w * ce).sum(dim=-1).mean(dim=-1)\n",
     "    return (w.detach() * ce).sum(dim=-1).mean(dim=-1)\n",
     ["tests/test_himpc_formula.py"]),
    ("himpc: HSM sign not flipped for correct windows", "vid2reid/himpc.py",
     "    sign = torch.where(pred == targets, -1.0, 1.0)",
     "    sign = torch.where(pred == targets, 1.0, 1.0)",
     ["tests/test_himpc_formula.py"]),
    ("himpc: embed uses the first head only", "vid2reid/himpc.py",
     "feats[lv] @ model.heads[lv].mean(dim=0)", "feats[lv] @ model.heads[lv][0]",
     ["tests/test_himpc_formula.py"]),
    ("extract: marker written before the video is processed", "vid2reid/pose/extract.py",
     "    reader = FrameReader(video)\n",
     "    atomic_write_bytes(marker_path(Path(settings.out), name), json.dumps(dict(status='done', backend=backend.name)).encode())\n"
     "    reader = FrameReader(video)\n",
     ["tests/test_pose_extract.py::test_interrupted_mid_video_redoes_that_video"]),
]

chosen = [m for m in MUTANTS if not only or only in m[0]]
# first the unmutated code: every selected test must pass, or "killed" would mean nothing
selection = sorted({t for m in chosen for t in m[4]})
base = subprocess.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection], cwd=wt,
                      capture_output=True, text=True, timeout=1800)
if base.returncode != 0:
    print(base.stdout[-3000:])
    sys.exit("the tests fail on the unmutated code; fix that first")
print(f"baseline: {len(selection)} test selection(s) pass on HEAD")

results = []
for name, rel, old, new, tests in chosen:
    path = wt / rel
    text = path.read_text()
    if text.count(old) != 1:
        print(f"STALE   {name}: the text to mutate is not (once) in {rel}; update this script")
        results.append((name, "stale"))
        continue
    path.write_text(text.replace(old, new))
    t0 = time.time()
    try:
        run = subprocess.run([py, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                             cwd=wt, capture_output=True, text=True, timeout=900)
        status = "killed" if run.returncode == 1 else (
            "survived" if run.returncode == 0 else f"error rc={run.returncode}")
        why = [l for l in run.stdout.splitlines() if l.startswith("FAILED")][:1]
    except subprocess.TimeoutExpired:
        status, why = "killed (timeout)", []
    finally:
        path.write_text(text)
    print(f"{status:<9} {name} ({time.time() - t0:.0f} s){' -- ' + why[0] if why else ''}",
          flush=True)
    results.append((name, status))

scored = [s for _, s in results if s != "stale"]
killed = sum(s.startswith("killed") for s in scored)
print(f"\nmutation score: {killed}/{len(scored)} killed"
      + (f", {len(results) - len(scored)} stale" if len(scored) < len(results) else ""))
sys.exit(0 if killed == len(scored) and len(scored) == len(results) else 1)
EOF
