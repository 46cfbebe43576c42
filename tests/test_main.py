"""``python -m associative_embedding``: the command line of ``__main__.py``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from associative_embedding.__main__ import build_parser, main

SRC = Path(__file__).resolve().parents[1] / "src"


def run_module(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, **env}
    environ["PYTHONPATH"] = str(SRC) + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "associative_embedding", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=900,
    )


def test_help_lists_warmup(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "warmup" in capsys.readouterr().out


def test_warmup_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["warmup", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "numba" in out and "NUMBA_CACHE_DIR" in out and "--dtype" in out


@pytest.mark.parametrize(
    ("argv", "dtypes"),
    [
        ([], ["float32"]),
        (["--dtype", "float64"], ["float64"]),
        (["--dtype", "float32", "--dtype", "float64"], ["float32", "float64"]),
    ],
)
def test_warmup_compiles_the_dtypes_asked_for(argv, dtypes, monkeypatch, capsys):
    import associative_embedding.decoding as decoding

    seen = []
    monkeypatch.setattr(decoding, "warmup", seen.append)
    assert main(["warmup", *argv]) == 0
    assert seen == [dtypes]
    assert f"s for {', '.join(dtypes)} (numba cache: " in capsys.readouterr().out


def test_warmup_rejects_an_unknown_dtype(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["warmup", "--dtype", "float16"])
    assert exc.value.code == 2
    assert "invalid choice: 'float16'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "the following arguments are required: COMMAND"), (["compile"], "invalid choice")],
)
def test_missing_or_unknown_command_is_an_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_warmup_in_a_subprocess_prints_the_time_and_fills_the_cache(tmp_path):
    # a fresh process with its own cache: compiles (slow), then a second one loads
    cache = tmp_path / "numba-cache"
    first = run_module("warmup", NUMBA_CACHE_DIR=str(cache))
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(
        rf"decoder kernels ready in \d+\.\d s for float32 \(numba cache: {re.escape(str(cache))}\)\n",
        first.stdout,
    )
    assert any(cache.rglob("*.nbi")), "warmup wrote no kernel index into NUMBA_CACHE_DIR"
    second = run_module("warmup", NUMBA_CACHE_DIR=str(cache))
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("decoder kernels ready in ")
