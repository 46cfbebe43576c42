"""Checks of the documentation sources that need no Sphinx build."""

from __future__ import annotations

import re
from pathlib import Path

import associative_embedding as ae

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_api_reference_lists_every_public_name():
    text = (DOCS / "api.rst").read_text()
    listed = set(re.findall(r"^   (\w+)$", text, flags=re.MULTILINE))
    public = set(ae.__all__) - {"__version__"}
    assert public - listed == set(), "public names missing from docs/api.rst"
    assert listed - public == set(), "docs/api.rst lists names that are not public"


def test_module_map_lists_every_module_of_the_package():
    text = (DOCS / "how_it_works.md").read_text()
    block = text.split("## Module map", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    # a line "name.py  ..." maps a module; one indented under "_decode/  ..." a module of
    # that subpackage; other indented lines are helpers of the module above them
    mapped, folder = set(), ""
    for line in block.splitlines():
        m = re.match(r"^(\s*)([\w.]+(?:\.py|/))\s", line)
        if not m:
            continue
        indent, name = m.groups()
        if name.endswith("/"):
            folder = name
        elif indent:
            mapped.add(folder + name)
        else:
            folder = ""
            mapped.add(name)
    package = Path(ae.__file__).parent
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    modules -= {"__init__.py", "_decode/__init__.py"}
    assert modules - mapped == set(), "modules missing from the module map in how_it_works.md"
    assert mapped - modules == set(), "the module map names files that do not exist"
