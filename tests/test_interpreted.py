"""The decoder's kernels run by the interpreter while numba compiles them (``_decode/interpreted.py``).

The interpreted kernels must return what the compiled ones return, bit for
bit, on every kernel path (the references', the crowd grouping's two) and
work dtype: a first decode with an empty cache returns the same people as
every later one.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import associative_embedding as ae
from associative_embedding._decode import compile_ahead as ca
from associative_embedding._decode import options as _options
from associative_embedding._decode import plan as _plan
from associative_embedding._decode.interpreted import interpreted, run
from associative_embedding._decode.people import empty_people

CONFIGS = {
    "default": ae.DecodeConfig(),
    "default, no refinement": ae.DecodeConfig(refine=False),
    "crowd, exact tag cost, tag gate": ae.DecodeConfig(tag_cost="exact", refine_tag_gate=True),
    "crowd, whole-map search": ae.DecodeConfig(
        refine_window=None, refine_exclusive=False, spatial_gate=None
    ),
    "higherhrnet": ae.DecodeConfig.preset("higherhrnet"),
    "pose-ae-train": ae.DecodeConfig.preset("pose-ae-train"),
    "mmpose-1.x": ae.DecodeConfig.preset("mmpose-1.x"),
    "mmpose-0.x, no refinement": ae.DecodeConfig.preset("mmpose-0.x", refine=False),
}


def _scene(rng, k=17):
    """Random people (Gaussian peaks, noisy tags), noise, sometimes ties; 1-2 tag dims."""
    h, w = (int(v) for v in rng.integers(6, 72, 2))
    d = int(rng.integers(1, 3))
    heat = np.zeros((1, k, h, w))
    tags = rng.normal(0.0, 0.3, (1, k, d, h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    for person in range(int(rng.integers(0, 10))):
        cx, cy, size = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 10)
        for j in range(k):
            if rng.random() < 0.2:
                continue
            x, y = cx + rng.normal(0, size), cy + rng.normal(0, 1.5 * size)
            sigma = rng.uniform(0.8, 2.5)
            peak = rng.uniform(0.2, 1.0) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / sigma**2 / 2)
            heat[0, j] = np.maximum(heat[0, j], peak)
            near = (xx - x) ** 2 + (yy - y) ** 2 < 9
            tags[0, j, :, near] += person
    heat += rng.uniform(0.0, rng.choice([0.0, 0.05, 0.3]), heat.shape)
    if rng.random() < 0.3:
        heat = np.round(heat * 8) / 8  # plateaus: tied peaks
    return heat, tags


def _decode_both(config, heat, tags):
    """Run a batch kernel compiled and interpreted; return both outputs (people, counts)."""
    b, k, d, h, w = tags.shape
    dtype = heat.dtype
    opts = _options.build(config, k, h, w, dtype)
    order = _options.joint_order(config, k)
    path = _options.kernel_path(config, opts)
    record = _options.kernel_record(opts, path)
    kernel = ca.batch_kernel(path)
    cap = _options.capacity(config, k, opts.max_candidates)
    results = []
    for call in (kernel, lambda *args: run(interpreted(kernel), *args)):
        out = empty_people((b,), cap, k, d, dtype)
        out_n = np.zeros(b, np.int64)
        call(heat, tags, order, record, (0, b), out, out_n)
        results.append((out, out_n))
    return results


def _assert_same(compiled, interpreted_):
    (c_out, c_n), (i_out, i_n) = compiled, interpreted_
    np.testing.assert_array_equal(i_n, c_n)
    for b, n in enumerate(c_n.tolist()):
        for field in c_out._fields:
            np.testing.assert_array_equal(
                getattr(i_out, field)[b, : max(n, 0)], getattr(c_out, field)[b, : max(n, 0)]
            )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_interpreted_kernels_equal_the_compiled_ones(name, dtype):
    rng = np.random.default_rng([list(CONFIGS).index(name), np.dtype(dtype).itemsize])
    for _ in range(4):
        heat, tags = _scene(rng)
        compiled, interpreted_ = _decode_both(CONFIGS[name], heat.astype(dtype), tags.astype(dtype))
        _assert_same(compiled, interpreted_)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_interpreted_kernels_equal_the_compiled_ones_on_many_scenes(name):
    rng = np.random.default_rng([100, list(CONFIGS).index(name)])
    for i in range(24):
        heat, tags = _scene(rng)
        dtype = (np.float32, np.float64)[i % 2]
        _assert_same(*_decode_both(CONFIGS[name], heat.astype(dtype), tags.astype(dtype)))


@pytest.mark.parametrize("name", ["default", "higherhrnet"])
def test_interpreted_kernels_report_nan_as_compiled(name):
    rng = np.random.default_rng(3)
    heat, tags = _scene(rng, k=5)
    heat = np.concatenate([heat, heat, heat]).astype(np.float32)
    tags = np.concatenate([tags, tags, tags]).astype(np.float32)
    heat[1, 2, 0, 0] = np.nan
    tags[2, 4, 0, -1, -1] = np.inf
    compiled, interpreted_ = _decode_both(CONFIGS[name], heat, tags)
    assert compiled[1][1:].tolist() == [-1, -1]
    _assert_same(compiled, interpreted_)


def test_interpreted_needs_a_numba_kernel():
    with pytest.raises(TypeError, match="kernel must be a numba dispatcher, got function"):
        interpreted(lambda: None)


def test_interpreted_kernels_call_no_compiled_code():
    """Every kernel an interpreted kernel reaches is interpreted too (no dispatcher in scope)."""
    from numba.core.dispatcher import Dispatcher

    function = interpreted(ca.batch_kernel("crowd"))
    seen, todo = set(), [function]
    while todo:
        f = todo.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        for name in f.__code__.co_names:
            value = f.__globals__.get(name)
            assert not isinstance(value, Dispatcher), (f.__name__, name)
            ours = "associative_embedding" in str(getattr(value, "__module__", ""))
            if hasattr(value, "__code__") and ours:  # an interpreted kernel, of any module
                todo.append(value)
    assert len(seen) > 20


# --- the plan: interpreted until the background compile has ended ---------------------------
class _FakeBackground:
    """Ends after ``checks`` calls of :meth:`ready`, with ``ok``."""

    def __init__(self, checks, ok=True):
        self.checks, self.ok = checks, ok

    def ready(self):
        self.checks -= 1
        return self.checks < 0


def _maps(b=3):
    rng = np.random.default_rng(11)
    scenes = [_scene(rng) for _ in range(b)]
    h = min(s[0].shape[2] for s in scenes)
    w = min(s[0].shape[3] for s in scenes)
    heat = np.concatenate([s[0][:, :, :h, :w] for s in scenes]).astype(np.float32)
    tags = np.concatenate([s[1][:, :, :1, :h, :w] for s in scenes]).astype(np.float32)
    return heat, tags[:, :, 0]


@pytest.mark.parametrize("checks", [0, 1, 2, 5])
def test_plan_switches_to_the_compiled_kernel_mid_batch(monkeypatch, checks):
    """Images before the background ends are interpreted, the rest compiled: same people."""
    heat, tags = _maps()
    expected = ae.decode(heat, tags, num_threads=1)
    compiled_images = []
    real_run_chunks = _plan.run_chunks

    def recording(fn, n_items, n_threads):
        compiled_images.append(n_items)
        real_run_chunks(fn, n_items, n_threads)

    monkeypatch.setattr(_plan, "run_chunks", recording)
    monkeypatch.setattr(ca, "start_background", lambda *args: _FakeBackground(checks))
    plan = _plan.Plan(ae.DecodeConfig(), heat.shape, 1, heat.dtype, 1)
    got = plan.run(heat, tags[:, :, None])
    interpreted_images = min(checks, 3)
    assert compiled_images == ([] if interpreted_images == 3 else [3 - interpreted_images])
    assert (plan.background is None) == (checks < 3)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_a_failed_background_compiles_here(monkeypatch):
    heat, tags = _maps(1)
    prepared = []
    monkeypatch.setattr(ca, "start_background", lambda *args: _FakeBackground(0, ok=False))
    monkeypatch.setattr(ca, "prepare", lambda *args: prepared.append(args[3]))
    plan = _plan.Plan(ae.DecodeConfig(), heat.shape, 1, heat.dtype, 1)
    (got,) = plan.run(heat, tags[:, :, None])
    assert prepared == ["crowd"] and plan.background is None
    (expected,) = ae.decode(heat, tags)
    np.testing.assert_array_equal(got.keypoints, expected.keypoints)


def test_no_background_with_one_process_or_inside_warmup(monkeypatch):
    monkeypatch.setenv(ca.ENV_PROCESSES, "1")
    assert ca._background_enabled() is False
    monkeypatch.setenv(ca.ENV_PROCESSES, "")
    assert ca._background_enabled() is True
    with ca.warming():
        assert ca._background_enabled() is False
    monkeypatch.setenv(ca.ENV_PROCESSES, "3")
    assert ca._background_enabled() is True


def test_a_forked_child_stops_waiting_for_the_parents_background(monkeypatch):
    """After a fork no thread waits for the parent's compile: it counts as failed there."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        background = ca.Background(process)
        monkeypatch.setattr(ca, "_BACKGROUND", {"float32-crowd": background})
        assert not background.ready()
        ca._after_fork()  # what os.register_at_fork runs in the child
        assert background.ready() and not background.ok
        assert ca._BACKGROUND == {}
    finally:
        process.kill()
        process.wait()


def test_a_plan_after_the_background_ended_takes_the_compiled_path(monkeypatch):
    """One background process per dtype and path: a plan made while it runs shares it; once it
    has ended, a new plan gets none (it loads the kernels, or compiles them if it failed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    background = ca.Background(process)
    monkeypatch.setattr(ca, "_BACKGROUND", {"float32-crowd": background})
    args = (None, (), np.float32, None, None, "crowd")  # returned before they are read
    assert ca.start_background(*args) is background
    process.stdin.close()
    assert background.wait(60)
    assert ca.start_background(*args) is None
    assert list(ca._BACKGROUND.values()) == [background]  # no second process
