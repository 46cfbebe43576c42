#!/usr/bin/env bash
# Installs the "mmpose" extra into the active virtual environment, then what mmpose's
# heads, data pipeline and CocoMetric need on top of it (tests/test_mmpose.py runs them):
#   - mmcv 2.1.0 with its compiled CPU ops instead of mmcv-lite (mmpose.models imports
#     mmcv.ops; mmdet 3.3.0 accepts mmcv < 2.2.0). No binary wheel exists on the package
#     registry: it is built from the sdist (about 10 minutes on 2 cores);
#   - xtcocotools built from source against numpy 2 (its binary wheels need numpy 1);
#   - mmdet 3.3.0 without its dependencies, and six (both imported by mmpose.models).
# The two built wheels are cached in $AE_WHEEL_CACHE (default
# ~/.cache/associative_embedding/wheels), outside the clone, and reused when present;
# without the cache they are built in a throwaway virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH="torch==2.13.0"
MMCV="mmcv==2.1.0"
XTCOCOTOOLS="xtcocotools==1.14.3"
WHEELS="${AE_WHEEL_CACHE:-$HOME/.cache/associative_embedding/wheels}"

# the extra (codec + loss, with mmcv-lite); torch pinned so that torchvision (a dependency
# of mmpose) is resolved against it instead of upgrading it
pip install -q -e ".[mmpose]" "$TORCH"
# mmpose requires torchvision; PyPI's wheel is built against the CUDA torch and does not
# load with a CPU build of torch ("operator torchvision::nms does not exist"), which
# breaks mmengine's Runner (it imports torchvision to log the environment). Nothing on
# mmpose's associative-embedding path uses it: remove it when it does not import.
if ! python -c "import torchvision" >/dev/null 2>&1; then
  echo "torchvision does not import with this torch; uninstalling it"
  pip uninstall -q -y torchvision
fi

cached() { compgen -G "$WHEELS/$1" >/dev/null; }
mmcv_wheel="mmcv-2.1.0-*.whl"
xtc_wheel="xtcocotools-1.14.3-*.whl"
if ! cached "$mmcv_wheel" || ! cached "$xtc_wheel"; then
  mkdir -p "$WHEELS"
  build="$(mktemp -d)"
  python -m venv "$build/venv"
  "$build/venv/bin/pip" install -q "$TORCH" numpy wheel Cython
  # mmcv 2.1.0's setup.py (pkg_resources) builds with setuptools < 70 only; torch asks
  # for a newer one, which pip reports as a conflict, and the build works regardless
  "$build/venv/bin/pip" install -q "setuptools<70" 2>/dev/null
  if ! cached "$mmcv_wheel"; then
    echo "building $MMCV with its ops into $WHEELS (about 10 minutes on 2 cores)"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "$build/venv/bin/pip" wheel -q --no-deps \
      --no-build-isolation -w "$WHEELS" "$MMCV"
  fi
  if ! cached "$xtc_wheel"; then
    echo "building $XTCOCOTOOLS from source into $WHEELS"
    "$build/venv/bin/pip" wheel -q --no-deps --no-build-isolation --no-binary xtcocotools \
      -w "$WHEELS" "$XTCOCOTOOLS"
  fi
  rm -rf "$build"
fi

pip uninstall -q -y mmcv-lite
pip install -q --no-deps --force-reinstall $WHEELS/$mmcv_wheel
pip install -q --no-deps --force-reinstall $WHEELS/$xtc_wheel
pip install -q --no-deps mmdet==3.3.0
pip install -q six
python -c "import mmcv.ops, mmpose.models, xtcocotools.coco; print('mmpose.models imports')"
