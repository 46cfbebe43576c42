"""The first compilation: a background process, split over two (``_decode/compile_ahead.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import associative_embedding as ae
from associative_embedding._decode import compile_ahead as ca
from associative_embedding._decode.options import build, joint_order, kernel_path, kernel_record

# Decodes under several configurations in a process that compiles (or loads) every
# kernel only through the batch kernel, then reports each per-image kernel whose
# signature as _compile_ahead builds it is not among those the batch kernel compiled.
CHILD_SIGNATURES = """
import json
import numpy as np
import associative_embedding as ae
from associative_embedding._decode import compile_ahead as ca
from associative_embedding._decode.options import build, joint_order, kernel_path, kernel_record

# the references' kernels (the crowd grouping, the defaults, has its own batch kernel)
ref = ae.DecodeConfig.preset("higherhrnet")
configs = [
    ae.DecodeConfig.preset("higherhrnet", detection_threshold=0.2),
    ref,
    ae.DecodeConfig.preset("mmpose-1.x"),
    ae.DecodeConfig.preset("pose-ae-train"),
    ae.DecodeConfig.preset(
        "higherhrnet", matching="greedy", refine=False, adjust=False, tag_distance="rms"
    ),
    ae.DecodeConfig.preset(
        "higherhrnet", use_detection_value=False, max_instances=3, ignore_too_much=True
    ),
]
crowd_configs = [
    ae.DecodeConfig(),
    ae.DecodeConfig(regroup=0, refine_window=None),
    ae.DecodeConfig(spatial_gate=None, pose_nms=None, spatial_limbs=None),
]
whole_map_configs = [  # the crowd grouping with the references' whole-map search
    ae.DecodeConfig(refine_window=None, refine_exclusive=False, spatial_gate=None),
    ae.DecodeConfig(
        regroup=0, refine_window=None, refine_exclusive=False, spatial_gate=None, pose_nms=None
    ),
]
rng = np.random.default_rng(0)
missing = []
paths = (
    ("references", 5, configs),
    ("crowd", 17, crowd_configs),
    ("crowd-whole-map", 17, whole_map_configs),
)
for path, k, found in paths:
    for dtype in (np.float32, np.float64):
        for dim in (1, 2):
            for i, config in enumerate(found):
                heat = rng.random((2, k, 12, 10)).astype(dtype)
                tags = rng.normal(size=(2, k, dim, 12, 10)).astype(dtype)
                ae.decode(heat, tags, config)
                opts = build(config, k, 12, 10, np.dtype(dtype))
                assert kernel_path(config, opts) == path, (path, i)
                order = joint_order(config, k)
                kernels = {**ca._kernels(path), "batch": ca.batch_kernel(path)}
                sigs = ca.signatures(np.dtype(dtype), kernel_record(opts, path), order, path)
                sigs["batch"] = sigs.pop(ca.batch_kernel(path).__name__)
                for name, kernel in kernels.items():
                    if sigs[name] not in kernel.overloads:
                        missing.append([np.dtype(dtype).name, dim, path, i, name])
# kernels compiled twice for the same types, once with an argument typed as a constant
# (Literal) and once not; a constant flag that selects code (True or False) is intended
import gc
from numba.core import types
from numba.core.registry import CPUDispatcher
twice = []
for obj in gc.get_objects():
    if isinstance(obj, CPUDispatcher) and obj.__module__.startswith("associative_embedding"):
        groups = {}
        for sig in obj.signatures:
            groups.setdefault(tuple(types.unliteral(a) for a in sig), []).append(sig)
        for sigs in groups.values():
            kinds = [{isinstance(sig[i], types.Literal) for sig in sigs} for i in range(len(sigs[0]))]
            if any(kind == {True, False} for kind in kinds):
                twice.append([obj.__module__, obj.__name__, [str(s) for s in sigs]])
print(json.dumps({"missing": missing, "twice": twice}))
"""

# The background process of a first decode with an empty cache: what it compiled and loaded.
CHILD_FIRST_CALL = """
import base64, json, pickle, sys
import numpy as np
import associative_embedding as ae
from associative_embedding._decode import compile_ahead as ca
from associative_embedding._decode.options import build, joint_order, kernel_path, kernel_record
path = sys.argv[1]
preset, changes = json.loads(sys.argv[2])
config = ae.DecodeConfig.preset(preset, **changes)
dtype = np.dtype(np.float32)
opts = build(config, 17, 32, 32, dtype)
record = kernel_record(opts, kernel_path(config, opts))
work = (dtype.name, record, joint_order(config, 17), path)
ca.background_main(base64.b64encode(pickle.dumps(work)).decode("ascii"))
rng = np.random.default_rng(5)
heat = rng.random((1, 17, 32, 32), np.float32)
tags = rng.normal(size=(1, 17, 2, 32, 32)).astype(np.float32)
(poses,) = ae.decode(heat, tags, config)  # the batch kernel is in memory: no second compile
kernels = {**ca._kernels(path), "batch": ca.batch_kernel(path)}
print(json.dumps({
    "keypoints": poses.keypoints.tolist(),
    "background": len(ca._BACKGROUND),
    "signatures": {name: len(k.signatures) for name, k in kernels.items()},
    "hits": {name: sum(k.stats.cache_hits.values()) for name, k in kernels.items()},
    "misses": {name: sum(k.stats.cache_misses.values()) for name, k in kernels.items()},
}))
"""


def _run(code: str, *args: str, **env: str) -> object:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_signatures_are_those_the_batch_kernel_compiles(tmp_path):
    """Each kernel compiled ahead gets the argument types the batch kernel calls it with.

    In a fresh process with an empty cache (a kernel loaded from the cache
    loads what it calls without compiling it), compiling in one process only,
    so that nothing was compiled from ``_compile_ahead``'s signatures: a
    mismatch would compile a kernel twice. No kernel is compiled twice for
    the same argument types, once with a constant argument typed as its value.
    """
    result = _run(
        CHILD_SIGNATURES, NUMBA_CACHE_DIR=str(tmp_path), ASSOCIATIVE_EMBEDDING_COMPILE_PROCESSES="1"
    )
    assert result["missing"] == []
    # a counter started at a constant (``n = 0``) is typed as ``Literal[int](0)`` first:
    # passed to a kernel, that compiles the kernel once more for the literal
    assert result["twice"] == []


# a configuration of each path (options.KERNEL_PATHS): a preset and changes
PATH_CONFIGS = {
    "references": ("higherhrnet", {}),
    "crowd": ("crowd", {}),
    "crowd-whole-map": (
        "crowd",
        {"refine_window": None, "refine_exclusive": False, "spatial_gate": None},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("path", list(PATH_CONFIGS))
def test_first_call_loads_what_the_child_compiled(tmp_path, path):
    """With an empty cache, the background process loads the child's kernels and compiles the
    rest once."""
    result = _run(
        CHILD_FIRST_CALL,
        path,
        json.dumps(PATH_CONFIGS[path]),
        NUMBA_CACHE_DIR=str(tmp_path),
        ASSOCIATIVE_EMBEDDING_COMPILE_PROCESSES="2",
    )
    for name in result["signatures"]:
        if name in ca.CHILD_KERNELS[path]:
            assert (result["hits"][name], result["misses"][name]) == (1, 0), name
        else:
            assert (result["hits"][name], result["misses"][name]) == (0, 1), name
    assert set(result["signatures"].values()) == {1}
    assert result["background"] == 0
    rng = np.random.default_rng(5)  # the child's maps
    heat = rng.random((1, 17, 32, 32), np.float32)
    tags = rng.normal(size=(1, 17, 2, 32, 32)).astype(np.float32)
    preset, changes = PATH_CONFIGS[path]
    config = ae.DecodeConfig.preset(preset, **changes)
    assert kernel_path(config, build(config, 17, 32, 32, np.dtype(np.float32))) == path
    (poses,) = ae.decode(heat, tags, config)
    assert len(poses) > 1
    np.testing.assert_array_equal(np.array(result["keypoints"]), poses.keypoints)


@pytest.mark.parametrize(
    ("value", "cores", "expected"),
    [
        ("", 1, False),
        ("", 2, True),
        ("1", 8, False),
        ("2", 1, True),
        ("0", 8, False),
        ("many", 8, False),
    ],
)
def test_enabled_follows_the_variable_and_the_cores(monkeypatch, value, cores, expected):
    import numba

    monkeypatch.setenv(ca.ENV_PROCESSES, value)
    monkeypatch.setattr(numba.config, "NUMBA_DEFAULT_NUM_THREADS", cores)
    assert ca._enabled() is expected


@pytest.mark.parametrize(
    ("executable", "expected"),
    [
        ("/usr/bin/python3.11", True),
        ("C:\\Python311\\python.exe", True),
        ("/opt/pypy/bin/pypy3", True),
        ("/usr/bin/uwsgi", False),
        ("/opt/blender/blender", False),
        ("", False),
    ],
)
def test_only_a_python_interpreter_is_started(monkeypatch, executable, expected):
    monkeypatch.setenv(ca.ENV_PROCESSES, "2")
    monkeypatch.setattr(sys, "executable", executable)
    assert ca._enabled() is expected


def test_disabled_jit_compiles_nothing_ahead(monkeypatch):
    import numba

    monkeypatch.setenv(ca.ENV_PROCESSES, "2")
    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    assert ca._enabled() is False


def _plan_args(dtype=np.float32):
    config = ae.DecodeConfig()
    return np.dtype(dtype), build(config, 2, 8, 8, np.dtype(dtype)), joint_order(config, 2)


def _no_child(*args):
    raise AssertionError("no child process expected")


def test_compiled_kernels_start_no_child(monkeypatch):
    with ca.warming():  # compiled here, not interpreted while a background process compiles
        ae.decode(np.zeros((1, 2, 8, 8), np.float32), np.zeros((1, 2, 8, 8), np.float32))
    dtype, opts, order = _plan_args()
    args = (dtype, kernel_record(opts, "crowd"), order, "crowd")
    monkeypatch.setattr(ca, "_DONE", set())
    monkeypatch.setattr(ca, "_enabled", lambda: True)
    monkeypatch.setattr(ca, "_start_child", _no_child)
    assert ca.prepare(*args) is False
    assert sorted(ca._DONE) == ["float32-crowd"]
    assert ca.prepare(*args) is False  # once per dtype and process


def test_unwritable_cache_starts_no_child(monkeypatch):
    monkeypatch.setattr(ca, "_DONE", set())
    monkeypatch.setattr(ca, "_enabled", lambda: True)
    monkeypatch.setattr(ca, "_cached", lambda kernel, sig: False)
    monkeypatch.setattr(ca, "_cache_writable", lambda kernel: False)
    monkeypatch.setattr(ca, "_start_child", _no_child)
    assert ca.prepare(*_plan_args()) is False


def test_cache_writable_needs_an_existing_writable_folder(tmp_path):
    def kernel(path):
        return SimpleNamespace(_cache=SimpleNamespace(_cache_path=path))

    assert ca._cache_writable(kernel(str(tmp_path))) is True
    assert ca._cache_writable(kernel(str(tmp_path / "absent"))) is False
    assert ca._cache_writable(SimpleNamespace(_cache=SimpleNamespace())) is False


@pytest.mark.parametrize("child", [None, "exit"])
def test_a_failed_child_leaves_the_decoder_working(monkeypatch, child):
    """No process started, or one that fails: the kernels are compiled here, results unchanged."""

    def start(sig):
        if child is None:
            return None
        return subprocess.Popen(
            [sys.executable, "-c", "raise SystemExit(3)"], stderr=subprocess.PIPE
        )

    monkeypatch.setattr(ca, "_DONE", set())
    monkeypatch.setattr(ca, "_enabled", lambda: True)
    monkeypatch.setattr(ca, "_cached", lambda kernel, sig: False)
    monkeypatch.setattr(ca, "_cache_writable", lambda kernel: True)
    monkeypatch.setattr(ca, "_start_child", start)
    assert ca.prepare(*_plan_args(np.float64)) is False
    heat = np.zeros((1, 2, 8, 8))
    heat[0, :, 3, 4] = 1.0
    (poses,) = ae.decode(heat, np.zeros((1, 2, 8, 8)), "higherhrnet", refine=False)
    assert poses.keypoints[:, :, :2].tolist() == [
        [[4.25, 3.25], [4.25, 3.25]]
    ]  # the quarter-pixel rule


def test_a_child_past_the_timeout_is_stopped(monkeypatch):
    monkeypatch.setattr(ca, "CHILD_TIMEOUT", 0.2)
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], stderr=subprocess.PIPE
    )
    assert ca.wait_child(child) is False
    assert child.returncode is not None


def test_child_main_compiles_the_given_signature(monkeypatch):
    import base64
    import pickle

    compiled = []

    class Kernel:
        def compile(self, sig):
            compiled.append(sig)

    monkeypatch.setattr(
        ca, "_kernels", lambda path="references": {"refine_image": Kernel(), "regroup": Kernel()}
    )
    sigs = ca.signatures(*_plan_args(), path="crowd-whole-map")
    wanted = {"refine_image": sigs["refine_image"], "regroup": sigs["regroup"]}
    ca.child_main(base64.b64encode(pickle.dumps(wanted)).decode("ascii"))
    assert compiled == [sigs["refine_image"], sigs["regroup"]]


# --- the first decode: interpreted while a background process compiles -------------------
FIRST_DECODE = """
import json, logging
import numpy as np
import associative_embedding as ae
from associative_embedding._decode import compile_ahead as ca
from associative_embedding._decode import interpreted
from associative_embedding._decode.pipeline import decode_range_crowd as kernel
messages = []
handler = logging.Handler()
handler.emit = lambda record: messages.append(record.getMessage())
logging.getLogger("associative_embedding").addHandler(handler)
rng = np.random.default_rng(2)
heat = (rng.random((2, 17, 40, 48)) ** 6).astype(np.float32)
tags = rng.normal(size=(2, 17, 40, 48)).astype(np.float32)
first = ae.decode(heat, tags)
running = [not b.ready() for b in ca._BACKGROUND.values()]
was_interpreted = len(interpreted._FUNCTIONS) > 0
for b in ca._BACKGROUND.values():
    b.wait()
later = ae.decode(heat, tags)
print(json.dumps({
    "running": running,
    "interpreted": was_interpreted,
    "ok": [b.ok for b in ca._BACKGROUND.values()],
    "same": all(np.array_equal(a.keypoints, b.keypoints, equal_nan=True)
                and np.array_equal(a.scores, b.scores) for a, b in zip(first, later)),
    "people": [len(p) for p in first],
    "hits": sum(kernel.stats.cache_hits.values()),
    "misses": sum(kernel.stats.cache_misses.values()),
    "messages": messages,
}))
"""


@pytest.mark.slow
def test_a_first_decode_interprets_while_a_background_process_compiles(tmp_path):
    """Empty cache: the first decode is interpreted, a background process compiles the
    kernels, and once it has ended the decoder loads them from the cache, same people."""
    result = _run(
        FIRST_DECODE, NUMBA_CACHE_DIR=str(tmp_path), ASSOCIATIVE_EMBEDDING_COMPILE_PROCESSES="2"
    )
    assert result["interpreted"] and result["ok"] == [True] and len(result["running"]) == 1
    assert result["same"] and min(result["people"]) > 0
    assert (result["hits"], result["misses"]) == (1, 0)  # loaded, never compiled here
    (message,) = result["messages"]
    assert "in a background process" in message
    assert list(tmp_path.rglob("pipeline.decode_range_crowd-*.nbi"))


# --- the first call explains itself ---------------------------------------------------------
def test_a_compile_is_announced_once_per_process(monkeypatch, caplog):
    import logging

    monkeypatch.setattr(ca, "_ANNOUNCED", False)
    monkeypatch.setattr(ca, "_cached", lambda kernel, sig: False)
    kernel = ae.decode  # only its type matters to the stubbed cache test
    with caplog.at_level(logging.WARNING, logger="associative_embedding"):
        assert ca.announce(kernel, (np.zeros(2),), "decoder's kernels") is True
        assert ca.announce(kernel, (np.zeros(2),), "decoder's kernels") is False
    messages = [r.getMessage() for r in caplog.records if r.name == "associative_embedding"]
    assert len(messages) == 1
    assert "compiling the decoder's kernels" in messages[0]
    assert "python -m associative_embedding warmup" in messages[0]
    assert "setLevel(logging.ERROR)" in messages[0]


def test_a_background_compile_is_announced_with_the_interpreter(monkeypatch, caplog):
    import logging

    monkeypatch.setattr(ca, "_ANNOUNCED", False)
    monkeypatch.setattr(ca, "_cached", lambda kernel, sig: False)
    with caplog.at_level(logging.WARNING, logger="associative_embedding"):
        assert ca.announce(ae.decode, (np.zeros(2),), "decoder's kernels", background=True)
    (message,) = [r.getMessage() for r in caplog.records if r.name == "associative_embedding"]
    assert "compiling the decoder's kernels for this machine in a background process" in message
    assert "about half a minute" in message and "Python interpreter" in message
    assert "python -m associative_embedding warmup" in message


def test_nothing_is_announced_when_the_kernel_is_cached(monkeypatch, caplog):
    import logging

    monkeypatch.setattr(ca, "_ANNOUNCED", False)
    monkeypatch.setattr(ca, "_cached", lambda kernel, sig: True)
    with caplog.at_level(logging.WARNING, logger="associative_embedding"):
        assert ca.announce(ae.decode, (np.zeros(2),), "decoder's kernels") is False
    assert not [r for r in caplog.records if r.name == "associative_embedding"]


FIRST_CALLS = """
import logging, sys
import numpy as np
import associative_embedding as ae
if sys.argv[1] == "quiet":
    logging.getLogger("associative_embedding").setLevel(logging.ERROR)
heat = np.zeros((1, 17, 16, 16), np.float32)
heat[0, :, 5, 6] = 1.0
for _ in range(2):
    ae.decode(heat, np.zeros_like(heat))
ae.decode_instances(heat[:, :1], np.zeros((1, 1, 16, 16), np.float32))
from associative_embedding._decode import compile_ahead as ca
for background in ca._BACKGROUND.values():  # the cache is filled when it ends
    background.wait()
print("done")
"""


@pytest.mark.slow
def test_first_calls_print_one_notice_on_stderr(tmp_path):
    """An empty numba cache: one notice on stderr for the whole process; none when silenced
    or once the kernels are cached."""

    def run(mode, cache):
        return subprocess.run(
            [sys.executable, "-c", FIRST_CALLS, mode],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "NUMBA_CACHE_DIR": str(cache)},
        )

    first = run("loud", tmp_path / "a")
    assert first.stdout.strip() == "done"
    assert first.stderr.count("compiling the decoder's kernels for float32 maps") == 1
    assert first.stderr.count("associative_embedding: compiling") == 1
    assert "compiling" not in run("loud", tmp_path / "a").stderr  # cached now
    assert "compiling" not in run("quiet", tmp_path / "b").stderr


def test_warming_announces_nothing(monkeypatch, caplog):
    """Inside ``warming()`` (``warmup``, which says what it compiles) there is no notice."""
    monkeypatch.setattr(ca, "_ANNOUNCED", False)
    monkeypatch.setattr(ca, "_cached", lambda kernel, sig: False)
    with ca.warming(), caplog.at_level("WARNING", logger=ca.LOGGER):
        assert ca.announce(None, (), "kernels") is False
    assert caplog.records == []
    assert ca._ANNOUNCED is False  # the first real compile after warmup still says so


@pytest.mark.slow
def test_warmup_child_compiles_its_share_into_the_cache(tmp_path):
    """The process ``warmup`` starts compiles the references' float64 kernels (and those of
    the tensor path and ``decode_instances``); this one then loads them, and nothing of the
    crowd kernels (``warmup``'s own share) is in the cache."""
    code = (
        "import sys, numpy as np\n"
        "from associative_embedding._decode import compile_ahead as ca\n"
        "child = ca.start_warmup_child('float64')\n"
        "assert child is not None and ca.wait_child(child)\n"
        "from associative_embedding._decode.pipeline import decode_range\n"
        "import associative_embedding as ae\n"
        "h, t = np.ones((1, 2, 4, 4)), np.zeros((1, 2, 4, 4))\n"
        "ae.decode(h, t, 'higherhrnet')\n"
        "print(sum(decode_range.stats.cache_hits.values()),"
        " sum(decode_range.stats.cache_misses.values()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), ca.ENV_PROCESSES: "2"},
        check=True,
    )
    assert out.stdout.split() == ["1", "0"]
    assert list(tmp_path.rglob("pipeline.decode_range-*.nbi"))
    assert not list(tmp_path.rglob("pipeline.decode_range_crowd*.nbi"))
