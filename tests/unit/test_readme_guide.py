"""The README as a user's guide: its architecture picture matches the packages and the
import-linter contracts, its screenshots exist, its links resolve, its quickstart is two commands."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PNG = b"\x89PNG\r\n\x1a\n"


def diagram() -> str:
    match = re.search(r"<!-- architecture:.*?-->\s*```mermaid\n(.*?)```", README, re.S)
    assert match, "README.md has no architecture diagram"
    return match.group(1)


def classes(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for names, cls in re.findall(r"^\s*class\s+([\w,]+)\s+(\w+)\s*$", text, re.M):
        out.setdefault(cls, set()).update(names.split(","))
    return out


def arrows(text: str) -> list[tuple[str, str]]:
    lines = [line.strip() for line in text.splitlines() if "-->" in line]
    found = [re.fullmatch(r"(\w+)\s*-->(?:\|[^|]*\|)?\s*(\w+)", line) for line in lines]
    assert all(found), [line for line, m in zip(lines, found, strict=True) if not m]
    return [(m.group(1), m.group(2)) for m in found if m]


def declared(text: str) -> set[str]:
    """Node ids declared with a label: ``id["..."]``, ``id(["..."])``, ``id[("...")]``."""
    return set(re.findall(r"^\s*(\w+)[\[(]", text, re.M)) - {"subgraph"}


def contracts() -> list[dict]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(data["tool"]["importlinter"]["contracts"])


def top(module: str) -> str | None:
    """``alina.team`` -> ``team``; a deeper module (``alina.skills._contract``) -> None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "alina" and len(parts) == 2 else None


def test_the_diagram_names_exactly_the_packages_under_alina() -> None:
    text = diagram()
    groups = classes(text)
    packages = groups["pkg"]
    for name in packages:
        assert (ROOT / "alina" / name / "__init__.py").is_file() or (
            ROOT / "alina" / f"{name}.py"
        ).is_file(), f"the diagram names {name}, which is not under alina/"
    on_disk = {p.parent.name for p in (ROOT / "alina").glob("*/__init__.py")}
    assert on_disk <= packages, f"packages missing from the README diagram: {sorted(on_disk - packages)}"
    assert {"config", "cli"} <= packages
    every = set().union(*groups.values())
    assert declared(text) == every, "each node is classed pkg, ext or person"
    for a, b in arrows(text):
        assert a in every and b in every, (a, b)
    assert {"postgres", "redis", "chroma", "prometheus", "llamacpp", "ollama"} <= groups["ext"]


def test_the_diagram_agrees_with_the_import_linter_contracts() -> None:
    text = diagram()
    pkg = classes(text)["pkg"]
    edges = [(a, b) for a, b in arrows(text) if a in pkg and b in pkg]
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    rank: dict[str, int] = {}
    for i, layer in enumerate(layers["layers"]):
        for module in layer.split("|"):
            name = top(module.strip())
            assert name in pkg, f"layer {module} is not in the diagram"
            rank[name] = i
    # the 'layers' subgraph lists exactly the contract's layers, top to bottom
    block = re.search(r"subgraph layers\b.*?\n(.*?)\n\s*end\n", text, re.S)
    assert block
    expected = [top(m.strip()) for layer in layers["layers"] for m in layer.split("|")]
    assert re.findall(r"^\s*(\w+)\[", block.group(1), re.M) == expected
    for a, b in edges:
        if a in rank and b in rank:
            assert rank[a] < rank[b], f"{a} --> {b} points up or sideways in the layers contract"
    for c in contracts():
        if c["type"] != "forbidden":
            continue
        sources = {top(m) for m in c["source_modules"]} - {None}
        forbidden = {top(m) for m in c["forbidden_modules"]} - {None}
        for a, b in edges:
            assert not (a in sources and b in forbidden), f"{a} --> {b} breaks contract {c['id']}"
    assert ("trading", "memory_store") in edges and ("team", "agents") in edges


def test_the_screenshots_are_shown_and_exist() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert "docs/img/chat.png" in images
    assert any(re.fullmatch(r"docs/img/notebook-[\w-]+\.png", i) for i in images)
    for image in images:
        data = (ROOT / image).read_bytes()
        assert data.startswith(PNG), image


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_in_the_readme_resolves() -> None:
    body = re.sub(r"```.*?```", "", README, flags=re.S)
    anchors = {slug(h) for h in re.findall(r"^#{1,6} (.+)$", body, re.M)}
    links = re.findall(r"\]\(([^)\s]+)\)", body)
    assert links
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        if link.startswith("#"):
            assert link[1:] in anchors, f"no heading for {link}"
        else:
            assert (ROOT / link.split("#")[0]).exists(), f"{link} does not exist"


def test_the_top_says_what_it_is_gives_two_commands_and_a_table_of_contents() -> None:
    head, _, rest = README.partition("## Quickstart")
    assert "It is for " in head and len(head.split()) < 250
    quick = rest.split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S)
    assert block
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    contents = rest.split("## Contents", 1)[1].split("\n## ", 1)[0]
    for section in re.findall(r"^## (.+)$", README, re.M):
        if section != "Contents":
            assert f"(#{slug(section)})" in contents, f"the contents do not list {section!r}"
    assert "(docs/configuration.md)" in contents


def test_the_autogen_sentence_names_the_contracts_packages() -> None:
    (autogen,) = [c for c in contracts() if c["id"] == "autogen"]
    sentence = " ".join(README.split("AutoGen stays", 1)[1].split("never import it", 1)[0].split())
    named = set(re.findall(r"`(\w+)`", sentence))
    assert named == {top(m) for m in autogen["source_modules"]} - {"_secrets"}


def test_every_library_the_readme_names_is_a_dependency() -> None:
    table = README.split("<!-- libraries:", 1)[1].split("\n\n", 1)[0]
    named = {
        n
        for row in table.splitlines()
        if row.startswith("| `")
        for n in re.findall(r"`([\w.-]+)`", row.split("|")[1])
    }
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    declared = {re.split(r"[\[<>=!~ ]", d, maxsplit=1)[0].lower() for d in deps}
    assert len(named) >= 10 and named <= declared, named - declared
