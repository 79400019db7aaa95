"""The README's examples are what the code accepts: CLI lines, magic lines, Python blocks; and it tells no speed."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from aiflow_nb.cli import build_parser
from aiflow_nb.workflow.cell_syntax import DEFINING, parse_cell

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```$", README, re.S | re.M)


def cli_examples() -> list[str]:
    lines = [line for lang, body in BLOCKS if lang in ("sh", "bash", "") for line in body.splitlines()]
    spans = [" ".join(span.split()) for span in re.findall(r"`(aiflow-nb [^`]+)`", README)]
    found = [line for line in lines if line.startswith("aiflow-nb ")]
    found += [span for span in spans if "|" not in span]  # `a|b` spans list choices, not one command
    return found


def magic_lines() -> list[str]:
    lines = [line for lang, body in BLOCKS if lang == "" for line in body.splitlines()]
    return [line for line in lines if line.startswith(("%aiflow ", "%%aiflow "))]


def test_the_readme_has_examples_of_both() -> None:
    assert len(cli_examples()) >= 10
    assert len([line for line in magic_lines() if line.split()[1] in DEFINING]) >= 5


@pytest.mark.parametrize("line", cli_examples())
def test_each_cli_example_parses(line: str) -> None:
    words = shlex.split(line, comments=True)
    try:
        build_parser().parse_args(words[1:])
    except SystemExit as exc:
        if exc.code != 0:  # --help exits 0
            pytest.fail(f"README: `{line}` is not a valid aiflow-nb command")


@pytest.mark.parametrize("line", [line for line in magic_lines() if line.split()[1] in DEFINING])
def test_each_defining_magic_line_parses(line: str) -> None:
    """As the magic reads it: the whole line, so a trailing comment would be an error too."""
    magic, rest = line.split(" ", 1)
    parse_cell(rest, body="pass" if magic == "%%aiflow" else None)


def test_the_python_blocks_are_python() -> None:
    blocks = [body for lang, body in BLOCKS if lang == "python"]
    assert blocks
    for body in blocks:
        ast.parse(body)


def test_the_readme_quotes_no_measurements() -> None:
    """Speed figures live in docs/benchmarks.md, which the README links to."""
    figure = re.compile(r"\d[\d,.]*\s*(µs|ms\b|req(uests)?/s|requests a second|events/s|events a second|x faster)")
    assert [m.group(0) for m in figure.finditer(README)] == []
    assert "docs/benchmarks.md" in README


def test_the_readme_shows_the_two_screenshots_of_the_checkout() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README)
    assert images == ["docs/images/author-dialog.png", "docs/images/workflow-view.png"]
    root = Path(__file__).resolve().parent.parent
    assert all((root / image).is_file() for image in images)


def test_the_package_index_page_is_short_self_contained_and_its_examples_parse() -> None:
    """pyproject's ``readme``: what a package index shows, where a relative link or image leads nowhere."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    readme = tomllib.loads((root / "pyproject.toml").read_text())["project"]["readme"]
    assert readme == "docs/pypi.md"
    text = (root / readme).read_text()
    assert not re.findall(r"\]\((?!https?://|#|mailto:)([^)\s]+)\)", text)
    assert "![" not in text and "<img" not in text
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)
    indented = [line.strip() for line in text.splitlines() if line.startswith("    aiflow-nb ")]
    assert len(indented) >= 3
    for line in indented:
        build_parser().parse_args(shlex.split(line, comments=True)[1:])
    magics = [line for lang, body in blocks if lang == "" for line in body.splitlines()]
    defining = [line for line in magics if line.startswith("%%aiflow ")]
    assert defining
    for line in defining:
        parse_cell(line.split(" ", 1)[1], body="print(day)")
    for body in [body for lang, body in blocks if lang == "python"]:
        ast.parse(body)
