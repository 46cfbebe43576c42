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
