#!/usr/bin/env bash
# Builds llama.cpp's OpenAI-compatible `llama-server` from the llama.cpp sources vendored in the
# PyPI sdist of llama-cpp-python (pip download, nothing else is fetched).
#   tools/build_llama_server.sh DEST        -> DEST/bin/llama-server
# Needs g++ and python3 with pip; cmake and ninja come from PATH or, when missing, from PyPI
# into DEST/buildtools. About 4 minutes on 2 cores. The binary is tuned to the building CPU
# (-march=native): build it on the machine that runs it.
# Idempotent: does nothing when DEST/bin/llama-server of the same version answers --version.
# Env: LLAMA_CPP_PYTHON_VERSION (default 0.3.36), PYTHON (default python3).
set -euo pipefail
DEST=${1:?usage: tools/build_llama_server.sh DEST}
VER=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
PY=${PYTHON:-python3}
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
BIN=$DEST/bin/llama-server
STAMP=$DEST/bin/llama-cpp-python.version

if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$VER" ] && "$BIN" --version >/dev/null 2>&1; then
  echo "$BIN exists (llama-cpp-python $VER)"
  exit 0
fi

command -v g++ >/dev/null || { echo "g++ is missing (Debian: apt-get install -y g++)" >&2; exit 1; }
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
  [ -x "$DEST/buildtools/bin/cmake" ] || {
    "$PY" -m venv "$DEST/buildtools"
    "$DEST/buildtools/bin/pip" install --quiet cmake ninja
  }
  export PATH="$DEST/buildtools/bin:$PATH"
fi

SDIST=$DEST/src/llama_cpp_python-$VER.tar.gz
[ -s "$SDIST" ] || "$PY" -m pip download --quiet --no-deps --no-binary llama-cpp-python \
  --dest "$DEST/src" "llama-cpp-python==$VER"
[ -d "$DEST/src/llama_cpp_python-$VER" ] || tar xzf "$SDIST" -C "$DEST/src"
cmake -S "$DEST/src/llama_cpp_python-$VER/vendor/llama.cpp" -B "$DEST/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
cmake --build "$DEST/build" --target llama-server -j "$(nproc)"
mkdir -p "$DEST/bin"
cp "$DEST/build/bin/llama-server" "$BIN.part"
mv "$BIN.part" "$BIN"
"$BIN" --version
echo "$VER" > "$STAMP"
echo "built $BIN"
