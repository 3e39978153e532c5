"""The README and docs/ stand alone: no path outside the repository, links that resolve, help
texts that point at sections that exist and are never cut off."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vid2reid.cli import app

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "sample_videos" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_path_outside_the_repository(page: Path):
    text = page.read_text()
    for bad in ("../shared", "/work/shared", "shared/docs", "shared/data"):
        assert bad not in text, f"{page.name} points outside the repository: {bad}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_docstrings_do_not_point_outside_the_repository():
    mine = ["vid2reid/evaluate.py", "vid2reid/report.py", "vid2reid/protocols.py",
            "vid2reid/pose/extract.py", "vid2reid/render/samples.py", "vid2reid/cli/extract.py",
            "vid2reid/cli/evaluate.py", "vid2reid/cli/render.py"]
    for rel in mine:
        assert "shared/" not in (REPO / rel).read_text(), rel


def test_help_names_readme_sections_that_exist_and_is_never_cut():
    def headings(page: str) -> set[str]:
        return {m.strip() for m in re.findall(r"^#+ (.+)$", (REPO / page).read_text(), re.M)}

    runner = CliRunner()
    for cmd in (["extract"], ["train"], ["eval"], ["import", "kgbd"], ["render-samples"]):
        out = runner.invoke(app, cmd + ["--help"], terminal_width=80).output
        assert "…" not in out, cmd  # what a rich table cell shows when it cuts a help text
        for page, section in re.findall(r'(README|docs/[\w-]+\.md)(?:\.md)?, "([^"]+)"',
                                        " ".join(out.split())):
            page = "README.md" if page == "README" else page
            assert section in headings(page), f"{cmd}: {page} has no section {section!r}"


# A figure the docs quote about time or the test suite: "384 passed", "took 162 s",
# "2 min 31 s", "about 100 s", "in 4 min", "41 s wall", ...
_FIGURE = re.compile(r"\b\d+ passed\b|\btook (?:about )?\d|\b\d+(?:\.\d+)? ?min\b|"
                     r"\b\d+(?:\.\d+)? s (?:wall|for)\b|\bin \d+(?:\.\d+)? s\b|\babout \d+ s\b")
_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
DATED_PAGES = [REPO / "README.md", *(REPO / "docs" / n for n in ("benchmarks.md", "results.md",
                                                               "testing.md", "usage.md"))]


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, code blocks left out, a table joined to the paragraph
    before it (which says where its numbers come from)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        if block.lstrip().startswith("|") and out:
            out[-1] += "\n" + block
        else:
            out.append(block)
    return out


@pytest.mark.parametrize("page", DATED_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_timing_and_test_count_has_its_date_and_command(page: Path):
    """Timings move with the machine and the code: each one says when and how it was taken,
    in its own paragraph (a date, and a command in backticks)."""
    for para in _paragraphs(page.read_text()):
        figure = _FIGURE.search(para)
        if figure:
            where = " ".join(para.split())[:160]
            assert _DATE.search(para), f"{page.name}: {figure.group(0)!r} without a date: {where}"
            assert "`" in para, f"{page.name}: {figure.group(0)!r} without a command: {where}"


def test_the_figure_check_finds_an_undated_figure():
    """The check above can fail: an undated timing is found, a dated one passes."""
    undated = "Training took 162 s on `vid2reid train`."
    dated = "Training took 162 s on `vid2reid train` (2026-11-30)."
    assert _FIGURE.search(undated) and not _DATE.search(undated)
    assert _FIGURE.search(dated) and _DATE.search(dated)
    assert _paragraphs("intro (2026-11-30)\n\n| a | b |\n|---|---|\n| 1 min | 2 |")[0].endswith("| 1 min | 2 |")
