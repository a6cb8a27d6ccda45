"""The README and docs agree with the code: the Layout section lists the real tree, the command table lists
every subcommand of `kmix --help`, and every link between the pages points at a file and heading that exist."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from kmix.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section (up to the next heading of level 1 or 2)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^#{{1,2}} |\Z)", text, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def layout_entries() -> dict[str, str]:
    """The Layout block as {path: its text}: a line starting at column 0 opens an entry (its first word is
    the path), indented lines continue it."""
    block = re.search(r"```\n(.*?)```", section(README, "Layout"), re.S).group(1)
    entries: dict[str, str] = {}
    path = None
    for line in block.splitlines():
        if line and not line[0].isspace():
            path, _, text = line.partition(" ")
            assert path not in entries, f"Layout lists {path} twice"
            entries[path] = text
        elif path is not None:
            entries[path] += " " + line.strip()
    return entries


def test_layout_lists_every_kmix_package_and_module_and_nothing_else():
    """Every subpackage `kmix/X/` and top-level module `kmix/X.py` of the tree is a Layout entry, and every
    `kmix/...` entry exists."""
    kmix = ROOT / "kmix"
    tree = {f"kmix/{d.name}/" for d in kmix.iterdir() if (d / "__init__.py").is_file()}
    tree |= {f"kmix/{f.name}" for f in kmix.glob("*.py") if f.name not in ("__init__.py", "__main__.py")}
    listed = {path for path in layout_entries() if path.startswith("kmix/")}
    assert listed == tree, f"missing from README's Layout: {sorted(tree - listed)}; not in the tree: " \
                           f"{sorted(listed - tree)}"


def test_layout_names_every_benchmark_script_and_folder():
    """The benchmarks/ entry names each benchmarks/*.py and *.sh file (and no other), and every folder under
    benchmarks/ has its own entry; every path the Layout names exists."""
    entries = layout_entries()
    bench = ROOT / "benchmarks"
    files = {f.name for f in bench.iterdir() if f.suffix in (".py", ".sh")}
    named = set(re.findall(r"\b[\w-]+\.(?:py|sh)\b", entries.get("benchmarks/", "")))
    assert named == files, f"missing: {sorted(files - named)}; not in benchmarks/: {sorted(named - files)}"
    folders = {f"benchmarks/{d.name}/" for d in bench.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))}
    assert folders <= set(entries), f"benchmark folders missing from the Layout: {sorted(folders - set(entries))}"
    assert [path for path in entries if not (ROOT / path).exists()] == []


def test_command_table_lists_every_subcommand_of_kmix_help():
    """The README's command table has one row per subcommand that `kmix --help` lists, and no other."""
    parser = build_parser()
    commands = set(parser.commands)
    help_text = parser.format_help()
    assert all(name in help_text for name in commands)
    rows = re.findall(r"^\| `kmix ([\w-]+)` \|", section(README, "Commands"), re.M)
    assert len(rows) == len(set(rows)), "a command has two rows"
    assert set(rows) == commands, f"missing rows: {sorted(commands - set(rows))}; not commands: " \
                                  f"{sorted(set(rows) - commands)}"


def slugs(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens, a repeated
    heading numbered -1, -2, ... (headings inside code blocks are not headings)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    seen: dict[str, int] = {}
    out = set()
    for title in re.findall(r"^#{1,6} (.+?)\s*#*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_between_pages_point_at_files_and_headings_that_exist(page):
    """A renamed heading or a moved file breaks no link: each relative link's file exists and, for a
    markdown target, its #anchor is one of that page's headings."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)  # commands are not links
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in slugs(file.read_text()):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert broken == [], f"{page.relative_to(ROOT)}: {broken}"
