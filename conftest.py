"""Collection rules for the whole repository (pytest reads this before src/ and tests/).

``src/associative_embedding/mmpose.py`` raises ImportError without mmpose, by design; the
doctest collection (``--doctest-modules``) skips it unless mmpose is installed.
"""

from __future__ import annotations

import importlib.util

collect_ignore = (
    [] if importlib.util.find_spec("mmpose") else ["src/associative_embedding/mmpose.py"]
)
