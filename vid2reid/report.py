"""``vid2reid eval --report DIR``: a self-contained HTML page of one evaluation, with its pictures.

Writes into DIR (each file atomically):

- ``cmc.png``: CMC curve, rank 1..20, of the trained run and the raw-coordinate
  baseline (window level, the same probes and gallery, the own video removed,
  ties counted against the probe as in ``vid2reid.metrics``);
- ``feature_map.png``: a 2-D t-SNE map of the test items' features (probe and
  gallery windows), one colour per identity, probes as crosses; at most
  ``MAP_MAX_ITEMS`` items, drawn at random with a fixed seed when there are more;
- ``training.png``: the run's training curves from its ``log.jsonl``: loss, the
  number of classes (named after what the run used: people, walk groups, DBSCAN
  clusters, ...), outliers when there were any, and pseudo-label agreement
  between epochs (ARI);
- ``index.html``: the result table, the notes and the three pictures embedded as
  data URIs, so the page opens from disk, offline, even when copied alone.

Identity labels are used here only to colour the map and to score, after
training, exactly as in evaluation.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path

import numpy as np

from vid2reid.errors import ConfigError
from vid2reid.evaluate import LEVELS, without_features
from vid2reid.store import atomic_write_bytes

log = logging.getLogger(__name__)

MAX_RANK = 20
MAP_MAX_ITEMS = 3000
_KEYS = ("top1", "top5", "top10", "mAP")


def check_report_deps() -> None:
    """ConfigError (one line) when the plotting library is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--report needs matplotlib: pip install matplotlib "
                          "(or: pip install 'vid2reid[report]')") from None


def cmc_curve(probe_ids: np.ndarray, gallery_ids: np.ndarray, probe_x: np.ndarray,
              gallery_x: np.ndarray, probe_groups: np.ndarray, gallery_groups: np.ndarray,
              max_rank: int = MAX_RANK, chunk: int = 1024) -> tuple[np.ndarray, int]:
    """CMC at ranks 1..max_rank (fractions) and the number of probes scored.

    A probe's rank is 1 + the number of gallery items that are not its identity
    (and not its own video) at a distance <= its nearest true match: ties count
    against the probe. Probes without a true match are left out.
    """
    import torch

    g = torch.from_numpy(np.ascontiguousarray(gallery_x, dtype=np.float32))
    gid, ggr = np.asarray(gallery_ids).astype(str), np.asarray(gallery_groups).astype(str)
    pid, pgr = np.asarray(probe_ids).astype(str), np.asarray(probe_groups).astype(str)
    ranks = []
    for s in range(0, len(pid), chunk):
        p = torch.from_numpy(np.ascontiguousarray(probe_x[s:s + chunk], dtype=np.float32))
        d = torch.cdist(p.double(), g.double()).numpy()
        same = pid[s:s + chunk, None] == gid[None, :]
        own = pgr[s:s + chunk, None] == ggr[None, :]
        true = same & ~own
        other = ~same & ~own
        best = np.where(true, d, np.inf).min(axis=1)
        ok = np.isfinite(best)
        ahead = (other & (d <= best[:, None])).sum(axis=1)
        ranks.append(ahead[ok] + 1)
    r = np.concatenate(ranks) if ranks else np.zeros(0, np.int64)
    if len(r) == 0:
        return np.zeros(max_rank), 0
    return np.array([(r <= k).mean() for k in range(1, max_rank + 1)]), int(len(r))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_cmc(result: dict) -> tuple[bytes, dict]:
    """CMC picture and the curves (percent) of the run and, when present, the raw baseline."""
    plt = _plt()
    curves = {}
    for name, res in ((_name(result), result), ("raw coordinates", result.get("raw"))):
        if res is None or "features" not in res:
            continue
        it = res["features"]["window"]
        p, gal = it["probe"], it["gallery"]
        cmc, n = cmc_curve(p["id"], gal["id"], p["x"], gal["x"], p["video"], gal["video"])
        curves[name] = {"cmc": [round(100 * float(v), 2) for v in cmc], "probes": n}
    fig, ax = plt.subplots(figsize=(6, 4))
    ranks = np.arange(1, MAX_RANK + 1)
    for (name, c), style in zip(curves.items(), ("o-", "s--")):
        ax.plot(ranks, c["cmc"], style, ms=4, label=f"{name} (rank-1 {c['cmc'][0]:.1f} %)")
    ax.set(xlabel="rank", ylabel="probes with a true match within rank (%)", ylim=(0, 101),
           xlim=(0.5, MAX_RANK + 0.5), xticks=[1, 5, 10, 15, 20],
           title=f"CMC, window level: probe {result['probe']} vs gallery {result['gallery']}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    data = _png(fig)
    plt.close(fig)
    return data, curves


def _tsne(x: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(x)
    if n < 3:
        return np.zeros((n, 2))
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto").fit_transform(x.astype(np.float64))


def plot_feature_map(result: dict, seed: int = 0) -> tuple[bytes, dict]:
    """t-SNE map of the test windows' features, coloured by identity; and what it shows."""
    plt = _plt()
    it = result["features"]["window"]
    x = np.concatenate([it["probe"]["x"], it["gallery"]["x"]])
    ids = np.concatenate([it["probe"]["id"], it["gallery"]["id"]]).astype(str)
    is_probe = np.r_[np.ones(len(it["probe"]["x"]), bool), np.zeros(len(it["gallery"]["x"]), bool)]
    keep = np.arange(len(x))  # probes and gallery are different videos under every protocol
    if len(keep) > MAP_MAX_ITEMS:
        keep = np.sort(np.random.default_rng(seed).choice(keep, MAP_MAX_ITEMS, replace=False))
    x, ids, is_probe = x[keep], ids[keep], is_probe[keep]
    xy = _tsne(x, seed)
    people = sorted(set(ids))
    cmap = plt.get_cmap("tab20" if len(people) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for k, person in enumerate(people):
        m = ids == person
        colour = cmap(k % cmap.N)
        ax.scatter(xy[m & ~is_probe, 0], xy[m & ~is_probe, 1], s=22, color=colour,
                   label=person if len(people) <= 20 else None)
        ax.scatter(xy[m & is_probe, 0], xy[m & is_probe, 1], s=40, color=colour, marker="x")
    ax.set(xticks=[], yticks=[], title=f"{result['description']}: test windows, t-SNE "
           f"({len(x)} items; dots gallery, crosses probes)")
    ax.title.set_fontsize(9)
    if len(people) <= 20:
        ax.legend(title="identity", fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    data = _png(fig)
    plt.close(fig)
    return data, {"items": int(len(x)), "identities": len(people), "method": "t-SNE"}


def read_history(run_dir: Path | str) -> list[dict]:
    """The per-epoch rows of a run's ``log.jsonl`` (empty when there is none)."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if isinstance(row, dict):
                rows.append(row)
            else:
                log.warning("%s: unreadable line skipped (not an epoch's JSON object)", path)
    return rows


# what a run's classes were, by its config.json's pseudo_labels (vid2reid.labels.REGISTRY)
_CLASS_TITLES = {"people": "classes: people (walks grouped by features and body)",
                 "walk-groups": "classes: walk groups (nearest walks paired)",
                 "walk-chains": "classes: walk chains (nearest walks linked)",
                 "walks": "classes: walks (every walk its own class)",
                 "clusters": "classes: clusters (DBSCAN over windows)"}


def read_run_config(run_dir: Path | str) -> dict:
    """A run's ``config.json`` as vid2reid.run reads it (empty when the run cannot be opened:
    the page then titles the training panels generically)."""
    from vid2reid.errors import RunError
    from vid2reid.run import open_run

    try:
        return open_run(run_dir).info
    except RunError:
        return {}


def _numbers(history: list[dict], key: str) -> list[tuple[int, float]]:
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]
    return [(e, float(r[key])) for e, r in zip(epochs, history)
            if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]


def training_panels(history: list[dict], config: dict | None = None) -> list[tuple[str, str]]:
    """The (log key, title) of each training panel worth drawing, and only those.

    The classes panel is named after what the run used (its ``config.json``'s
    ``pseudo_labels``; runs from before that setting used DBSCAN clusters, runs
    without a config are "classes"); a warm-up with one class per walk is said.
    A panel whose value was never logged, and the outliers panel when no window
    was ever left out (walk groups never leave one out), are left out.
    """
    config = config or {}
    panels = [("loss", "loss")]
    if _numbers(history, "clusters"):
        labels = config.get("pseudo_labels", "clusters") if config else None
        title = _CLASS_TITLES.get(labels, f"classes: {labels}" if labels else "classes")
        warmup = int(config.get("walk_warmup") or 0) if labels in ("people", "walk-groups", "walk-chains") else 0
        if warmup:
            title += f";\nevery walk its own class in epochs 1-{warmup}" if warmup > 1 else \
                ";\nevery walk its own class in epoch 1"
        panels.append(("clusters", title))
    if any(y != 0 for _, y in _numbers(history, "outliers")):
        panels.append(("outliers", "outliers (windows sitting the epoch out)"))
    if _numbers(history, "label_ari"):
        panels.append(("label_ari", "pseudo-label agreement with the\nprevious epoch (ARI)"))
    return panels


def plot_training(history: list[dict], config: dict | None = None) -> tuple[bytes, list[str]]:
    """The training curves worth drawing (:func:`training_panels`), one panel each, and
    their titles."""
    plt = _plt()
    panels = training_panels(history, config)
    from matplotlib.ticker import MaxNLocator

    cols = len(panels) if len(panels) <= 3 else 2
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax, (key, title) in zip(flat, panels):
        pts = _numbers(history, key)
        if pts:
            ax.plot(*zip(*pts), "o-", ms=3)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("training curves (from the run's log.jsonl)", fontsize=10)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data, [title.replace("\n", " ") for _, title in panels]


def _table_html(result: dict) -> str:
    raw = result.get("raw")
    head = "".join(f"<th>{k.replace('top', 'top-')}</th>" for k in _KEYS)
    cols = f"<th rowspan=2>level</th><th colspan=4>{html.escape(_name(result))}</th>"
    if raw:
        cols += "<th colspan=4>raw coordinates</th>"
    rows = [f"<tr>{cols}<th rowspan=2>probes</th><th rowspan=2>gallery</th></tr>",
            f"<tr>{head}{head if raw else ''}</tr>"]
    for lvl in ("window", "sequence"):
        m = result[lvl]
        cells = "".join(f"<td>{100 * m[k]:.1f}</td>" for k in _KEYS)
        if raw:
            cells += "".join(f"<td>{100 * raw[lvl][k]:.1f}</td>" for k in _KEYS)
        rows.append(f"<tr><td>{lvl}</td>{cells}<td>{m['probes']}</td><td>{m['gallery']}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _name(result: dict) -> str:
    return "trained model" if result.get("representation") == "run" else "raw coordinates"


def _img(title: str, data: bytes, file: str, caption: str) -> str:
    b64 = base64.b64encode(data).decode()
    return (f"<figure><h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{b64}'><figcaption>{caption} "
            f"(also <a href='{file}'>{file}</a>)</figcaption></figure>")


def write_report(result: dict, out_dir: Path | str, force: bool = False) -> Path:
    """Write the report of ``result`` (from ``evaluate(..., keep_features=True)``, with or
    without ``raw``) into ``out_dir``; returns the path of ``index.html``. A folder holding
    files vid2reid did not write is refused unless ``force`` (vid2reid.locks.claim_output)."""
    from vid2reid.locks import claim_output
    from vid2reid.safepath import EVAL_REPORT

    with claim_output(out_dir, EVAL_REPORT, force, "--report"):
        return _write_report(result, out_dir)


def _write_report(result: dict, out_dir: Path | str) -> Path:

    check_report_deps()
    if "features" not in result:
        raise ConfigError("the report needs the evaluation's features (keep_features=True)")
    out = Path(out_dir)
    figures = []
    cmc_png, curves = plot_cmc(result)
    atomic_write_bytes(out / "cmc.png", cmc_png)
    figures.append(_img("CMC curve", cmc_png, "cmc.png",
                        "Share of probes whose first true match is within rank k; "
                        "window level, own video excluded, ties against the probe."))
    map_png, map_info = plot_feature_map(result)
    atomic_write_bytes(out / "feature_map.png", map_png)
    figures.append(_img("Feature map", map_png, "feature_map.png",
                        f"t-SNE of {map_info['items']} test windows' features, one colour per "
                        f"identity ({map_info['identities']} people); close points look alike "
                        f"to the model. Distances between far-apart groups mean little in t-SNE."))
    history = read_history(result["run"]) if result.get("run") else []
    if history:
        train_png, titles = plot_training(history, read_run_config(result["run"]))
        atomic_write_bytes(out / "training.png", train_png)
        left_out = ("" if any(t.startswith("outliers") for t in titles)
                    or not _numbers(history, "outliers")
                    else " No window was left out as an outlier in any epoch (panel left out).")
        figures.append(_img("Training curves", train_png, "training.png",
                            f"{len(history)} epoch(s) from {html.escape(str(result['run']))}"
                            f"/log.jsonl: {html.escape('; '.join(titles))}.{left_out} No identity "
                            f"label is used in training; these curves are what a user can watch "
                            f"without labels."))
    verdict = _verdict(result) if result.get("raw") else ""
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result["setting_notes"])
    summary = without_features(result)
    summary["cmc_percent"] = curves
    title = (f"vid2reid: probe {result['probe']} vs gallery {result['gallery']}, protocol "
             f"{result['protocol']}{'' if result['standard'] else ' (NON-STANDARD)'}")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #bbb; padding: 0.25rem 0.6rem; text-align: right; }}
th {{ background: #f0f0f0; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
figure {{ margin: 2rem 0; }}
figcaption {{ color: #555; font-size: 0.9rem; }}
code {{ background: #f4f4f4; padding: 0 0.2rem; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(result['description'])}, window length f = {result['f']} frames, store
<code>{html.escape(str(result['data']))}</code>. CMC top-k and mAP in %.</p>
{_table_html(result)}
<p><strong>{html.escape(verdict)}</strong></p>
<ul>{notes}</ul>
{''.join(figures)}
<details><summary>metrics as JSON</summary><pre>{html.escape(json.dumps(summary, indent=2))}</pre>
</details>
</body></html>
"""
    index = out / "index.html"
    atomic_write_bytes(index, page.encode())
    return index


# Text tables (the terminal's view of a result; the HTML page above embeds them)

def _verdict(result: dict) -> str:
    """One line saying what the side-by-side numbers mean."""
    run, raw = result["window"], result["raw"]["window"]
    d1, dm = 100 * (run["top1"] - raw["top1"]), 100 * (run["mAP"] - raw["mAP"])
    probe = 100.0 / max(1, run["probes"])
    # a metric moved when its gap shows at one decimal; the head names which one(s) moved
    up = [m for m, d in (("top-1", d1), ("mAP", dm)) if round(d, 1) > 0]
    down = [m for m, d in (("top-1", d1), ("mAP", dm)) if round(d, 1) < 0]
    level = [m for m in ("top-1", "mAP") if m not in up + down]
    if up and down:
        head = (f"the trained model and raw joint coordinates split the metrics: the trained "
                f"model ahead on {up[0]}, raw coordinates on {down[0]}")
    elif up:
        head = "the trained model beats raw joint coordinates" + (
            f" on {up[0]} only, level on {level[0]}" if level else "")
    elif down:
        head = "raw joint coordinates beat the trained model" + (
            f" on {down[0]} only, level on {level[0]}" if level else "")
    else:
        head = "the trained model and raw joint coordinates are level"
    small = (f"; with {run['probes']} probes one probe moves top-1 by {probe:.1f} points, so "
             f"read gaps under ~{2 * probe:.0f} points as noise" if run["probes"] < 100 else "")
    clusters = _last_clusters(result.get("run"))
    why = (f" Training ended with {clusters} cluster(s): the prototype loss had (almost) nothing to "
           f"contrast, as on stores with few windows per person (docs/methods.md)."
           if clusters is not None and clusters <= 3 else "")
    return (f"meaning: {head} (window top-1 {d1:+.1f}, mAP {dm:+.1f} points){small}. Raw "
            f"coordinates need no training: a learned model is worth keeping only above them."
            f"{why}")


def _last_clusters(run: str | None) -> int | None:
    """Clusters in the last logged epoch of a run (None when unknown)."""
    if not run:
        return None
    try:
        lines = (Path(run) / "log.jsonl").read_text().strip().splitlines()
        row = json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None
    value = row.get("clusters") if isinstance(row, dict) else None
    return int(value) if isinstance(value, (int, float)) else None


def format_table(result: dict) -> str:
    """A readable table of both levels, with item counts and the setting notes."""
    lines = [f"{result['description']}, f={result['f']}, protocol {result['protocol']}"
             f"{'' if result['standard'] else ' (NON-STANDARD)'}: "
             f"probe {result['probe']} vs gallery {result['gallery']}",
             f"{'level':<10}{'top-1':>8}{'top-5':>8}{'top-10':>8}{'mAP':>8}{'probes':>9}"
             f"{'gallery':>9}"]
    for lvl in LEVELS:
        m = result[lvl]
        lines.append(f"{lvl:<10}" + "".join(f"{100 * m[k]:>7.1f}%" for k in
                                            ("top1", "top5", "top10", "mAP"))
                     + f"{m['probes']:>9}{m['gallery']:>9}")
    for lvl in LEVELS:
        views = result[lvl].get("top1_per_probe_view")
        if views:
            lines.append(f"{lvl} top-1 per probe view: "
                         + ", ".join(f"{v} {100 * t:.1f}%" for v, t in views.items()))
    lines += [f"note: {n}" for n in result["setting_notes"]]
    return "\n".join(lines)


def format_comparison(result: dict) -> str:
    """The trained run and the raw baseline side by side (``result`` from
    :func:`evaluate_with_raw`), item counts, one line of meaning, and the notes."""
    raw = result["raw"]
    keys = ("top1", "top5", "top10", "mAP")
    lines = [f"{result['description']} vs raw joint coordinates, f={result['f']}, protocol "
             f"{result['protocol']}{'' if result['standard'] else ' (NON-STANDARD)'}: probe "
             f"{result['probe']} vs gallery {result['gallery']} (%)",
             f"{'':<10}{'trained model':^32}|{'raw coordinates':^32}",
             f"{'level':<10}" + "".join(f"{k.replace('top', 'top-'):>8}" for k in keys) + "|"
             + "".join(f"{k.replace('top', 'top-'):>8}" for k in keys) + f"{'probes':>8}"
             f"{'gallery':>9}"]
    for lvl in LEVELS:
        m, r = result[lvl], raw[lvl]
        lines.append(f"{lvl:<10}" + "".join(f"{100 * m[k]:>8.1f}" for k in keys) + "|"
                     + "".join(f"{100 * r[k]:>8.1f}" for k in keys)
                     + f"{m['probes']:>8}{m['gallery']:>9}")
    lines.append(_verdict(result))
    lines += [f"note: {n}" for n in result["setting_notes"]]
    return "\n".join(lines)
