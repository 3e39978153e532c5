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