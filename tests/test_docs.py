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
    mapped = set(re.findall(r"^\s*([\w.]+\.py)\s", block, flags=re.MULTILINE))
    package = Path(ae.__file__).parent
    modules = {p.name for p in package.glob("*.py")} - {"__init__.py"}
    assert modules - mapped == set(), "modules missing from the module map in how_it_works.md"
    assert mapped - modules == set(), "the module map names files that do not exist"
