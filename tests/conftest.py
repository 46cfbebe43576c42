"""Shared fixtures: seeded RNG per test, CUDA skipping, doctest namespace.

- ``rng``: the one random generator of the test suite, seeded from the test's id.
- ``DEVICES``: the device list for ``@pytest.mark.parametrize("device", DEVICES)``.
- CUDA policy: mark a test (or a parameter) ``@pytest.mark.cuda``; without a CUDA
  device :func:`pytest_collection_modifyitems` skips it. No test adds its own
  ``skipif``.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

#: devices every device-parametrised test runs on; "cuda" carries the ``cuda`` mark
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="CUDA not available")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A per-test generator seeded from the test's name (order independent)."""
    seed = zlib.crc32(request.node.nodeid.encode())  # stable across processes
    return np.random.default_rng(seed)


def assert_terms_and_grads_close(loss, reference, tags, target, rng, rtol, **options):
    """``loss`` and its slow ``reference`` give equal (pull, push) terms and gradients.

    ``loss(t, target, reduction="none", **options)`` and ``reference(t, target,
    **options)`` each get a fresh copy of ``tags`` that requires grad and return
    per-item ``(pull, push)``; the gradients compared are those of a random
    positive weighting of ``pull + 0.7 * push``.
    """
    t1 = tags.clone().requires_grad_(True)
    t2 = tags.clone().requires_grad_(True)
    pull, push = loss(t1, target, reduction="none", **options)
    rpull, rpush = reference(t2, target, **options)
    torch.testing.assert_close(pull, rpull, rtol=rtol, atol=1e-12)
    torch.testing.assert_close(push, rpush, rtol=rtol, atol=1e-12)
    weights = torch.from_numpy(rng.uniform(0.5, 2.0, size=pull.shape[0]))
    ((pull + 0.7 * push) * weights).sum().backward()
    ((rpull + 0.7 * rpush) * weights).sum().backward()
    torch.testing.assert_close(t1.grad, t2.grad, rtol=rtol, atol=1e-10)


def rle_counts(region: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE of a boolean (H, W) region: column-major runs, zeros first."""
    runs, prev, n = [], False, 0
    for v in np.asarray(region, dtype=bool).ravel(order="F"):
        if v != prev:
            runs.append(n)
            n, prev = 0, v
        n += 1
    runs.append(n)
    return runs


@pytest.fixture(autouse=True)
def _restore_torch_rng():
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


@pytest.fixture(autouse=True)
def _doctest_deps(doctest_namespace):
    import associative_embedding as ae

    doctest_namespace.update(np=np, torch=torch, ae=ae)
