#!/usr/bin/env bash
# Fetch the Python packages that the GPU machine lacks into .whl/ (git-ignored through .git/info/exclude), for
# benchmarks/gpu_check.sh. The GPU image has torch, numpy, scipy, scikit-image, pandas, safetensors, tqdm, einops,
# timm, matplotlib; it lacks nnunetv2 and its helpers. SimpleITK (~50 MB, compiled) is not carried: the scripts stub the
# I/O libraries that their code paths never call, and the whole-case write uses a .npy stand-in without it.
# Usage (repository root, on a machine with PyPI): bash benchmarks/gpu_wheels.sh
set -euo pipefail
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
PY=${PYTHON:-python3}
# pure-Python packages: wheels built here from PyPI (some are published as sdists only)
"$PY" -m pip wheel --quiet --no-deps -w .whl nnunetv2==2.8.1 dynamic-network-architectures==0.4.4 acvl-utils==0.2.6 \
  batchgenerators==0.25.5 batchgeneratorsv2==0.3.6 yacs==0.1.8 graphviz==0.21 nibabel==5.4.2 future==1.0.0 \
  unittest2==1.1.0
# compiled: the CPython 3.12 x86-64 build of the GPU image's python3
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl connected-components-3d==4.1.1
ls -la .whl
du -sh .whl
