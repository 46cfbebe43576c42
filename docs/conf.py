"""Sphinx configuration of the associative_embedding documentation.

Build (from the repository root):

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -W --keep-going -b doctest -D plot_gallery=0 docs docs/_build/doctest

Offline machines (CI): set ``AE_DOCS_OFFLINE=1`` (or ``CI=true``) so that
intersphinx fetches no inventories; with ``-W`` an unreachable inventory would
fail the build.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
os.environ.setdefault("MPLBACKEND", "Agg")
try:
    import associative_embedding as ae
except ImportError:  # a source checkout that is not installed: use it in place
    sys.path.insert(0, str(ROOT / "src"))
    import associative_embedding as ae

# -- Project -----------------------------------------------------------------

project = "associative_embedding"
author = "associative_embedding developers"
copyright = "2026, associative_embedding developers"
try:
    release = _version("associative-embedding")
except PackageNotFoundError:  # not installed: a source checkout on sys.path
    release = ae.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions --------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_copybutton",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb"]
templates_path = ["_templates"]
nitpicky = True
default_role = "obj"

# -- Offline switch for intersphinx --------------------------------------------

OFFLINE = os.environ.get("AE_DOCS_OFFLINE", "") not in ("", "0") or (
    os.environ.get("CI", "").lower() in ("1", "true", "yes")
)
if OFFLINE:
    intersphinx_mapping: dict[str, tuple[str, None]] = {}
else:
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "torch": ("https://docs.pytorch.org/docs/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
    }
intersphinx_timeout = 10
# References that only intersphinx resolves; offline they are plain text.
nitpick_ignore_regex = [
    ("py:.*", r"(numpy|np|scipy|torch|matplotlib|pycocotools|json|os|numbers)(\..*)?"),
    ("py:.*", r"(ndarray|Tensor|array_like|callable|optional|Axes|Figure|Module|nn\.Module)"),
]
if not OFFLINE:
    nitpick_ignore_regex = [
        ("py:.*", r"(pycocotools)(\..*)?"),
        ("py:.*", r"(array_like|callable|optional)"),
    ]

# -- autodoc, autosummary, numpydoc --------------------------------------------

autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # the numpydoc sections carry types and shapes
autodoc_default_options = {"member-order": "bysource"}
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
# every check except: extended summary, See Also, Examples (the API pages link the gallery),
# GL01/GL02 (summary placement), SS05 (infinitive verbs), RT02/RT04 (a return description
# may start with a dtype, "float32 targets ...")
numpydoc_validation_checks = {"all", "ES01", "SA01", "EX01", "GL01", "GL02", "SS05", "RT02", "RT04"}
numpydoc_validation_exclude = {
    r"\.__init__$",
    r"\.__repr__$",
    r"\.__call__$",
    r"\.forward$",  # nn.Module.forward: documented on the class
    r"\.extra_repr$",
    # Skeleton instances: numpydoc would validate Skeleton's docstring
    r"\.(COCO|MPII|CROWDPOSE|AIC)_KEYPOINTS$",
    r"\.PullPush(\.pull|\.push)?$",  # NamedTuple: fields are documented as Attributes
}

# -- MyST ----------------------------------------------------------------------

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- doctest: the code of the narrative pages runs --------------------------------

# The narrative pages use testcode/testoutput blocks. Plain ">>>" blocks are the
# docstrings' Examples, which pytest --doctest-modules runs already: not twice.
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import matplotlib
matplotlib.use("Agg")
import numpy as np
import associative_embedding as ae
"""
doctest_default_flags = (
    __import__("doctest").ELLIPSIS
    | __import__("doctest").NORMALIZE_WHITESPACE
    | __import__("doctest").DONT_ACCEPT_TRUE_FOR_1
)

# -- sphinx-gallery --------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": ["../examples/gallery"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py|/_",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
    "doc_module": ("associative_embedding",),
    "backreferences_dir": "api/generated/backreferences",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "capture_repr": ("_repr_html_",),
}

# -- HTML ------------------------------------------------------------------------

html_theme = "furo"
html_title = f"associative_embedding {release}"
html_static_path = ["_static"]
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True


def _skip_namedtuple_aliases(app, what, name, obj, skip, options):
    """Hide NamedTuple fields' generated docstrings; the class's Attributes cover them."""
    doc = getattr(obj, "__doc__", None) or ""
    if what == "class" and doc.startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_namedtuple_aliases)
