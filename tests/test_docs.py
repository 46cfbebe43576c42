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
