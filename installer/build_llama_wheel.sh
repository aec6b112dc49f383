#!/usr/bin/env bash
# Build llama-cpp-python into a wheel for a portable CPU baseline, cached under the build
# folder so that neither the project venv's copy nor pip's cache is touched.
#   installer/build_llama_wheel.sh WHEEL_DIR
#
# Baseline: x86-64-v3 (SSE4.2, AVX, AVX2, FMA, F16C, BMI2; no AVX-512, no AMX), i.e. Intel
# Haswell (2013) and AMD Zen / Excavator or newer. GGML_NATIVE=OFF so the build machine's
# own instruction set (-march=native) never leaks in; the launcher checks these flags in
# /proc/cpuinfo and refuses with a message on an older CPU instead of dying of SIGILL.
# Why not llama.cpp's GGML_CPU_ALL_VARIANTS: it needs GGML_BACKEND_DL, and llama-cpp-python
# never calls ggml_backend_load_all(), so the model load would fail with "no backends are
# loaded"; it also compiles the CPU backend about ten times.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: installer/build_llama_wheel.sh WHEEL_DIR}
py=${PY:-python3.11}
version=$(sed -n 's/^llama-cpp-python==//p' requirements/base.txt)
mkdir -p "$out"
if ls "$out"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
  echo "portable llama-cpp-python $version wheel already in $out"; exit 0
fi
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_BACKEND_DL=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
# --no-cache-dir: never pick up (or store) a natively built wheel from pip's cache.
"$py" -m pip wheel --no-cache-dir --no-deps --no-binary llama-cpp-python \
  --wheel-dir "$out" "llama-cpp-python==$version"
echo "portable wheel: $(ls "$out"/llama_cpp_python-"$version"-*.whl)"
