#!/usr/bin/env bash
# Transcription throughput benchmark on the GPU machine, in one call.
#
# 1. Here (a machine with PyPI, the test clips and tiny.en), once:
#      bash bench/gpu_run.sh prepare
#    fills .devcarry/ (git-ignored, ~51 MiB): openai-whisper and more-itertools wheels,
#    tiny.en int8-packed and xz-compressed (26 MiB), the clips as one int16 archive, and a
#    static ffmpeg (imageio-ffmpeg 0.4.9's binary, xz-compressed) for the CLI way.
# 2. On the device (python3 with torch and CUDA; no network):
#      device run: command "bash bench/gpu_run.sh", carry [".devcarry"], timeout_s 600
#    It unpacks everything under /tmp, builds a 64-file corpus, runs cli/loop/batched with
#    tiny.en (beam 5; batched at 64 with CUDA-graph and eager decoder steps, then at 16 and
#    32), then loop/batched with random-weight checkpoints at a fixed decoded length. The
#    environment narrows it: WAYS (cli,loop,batched), STEP_MODES (graph,eager), BATCH_SIZES
#    (16,32; "" for none), SIZES (large-v3; also small, medium; " " for none).
#    Results: $OUT/RESULTS-gpu.md
#    (tables for bench/RESULTS.md), $OUT/gpu_run.log, $OUT/tiny_en.json. About 7 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=.devcarry

if [ "${1:-run}" = prepare ]; then
    set -e
    PY=${PYTHON:-.venv/bin/python}
    CKPT=${ASR_TEST_WHISPER_CKPT:-$HOME/.cache/kfp-asr-summarize/tiny.en.pt}
    AUDIO=${ASR_TEST_AUDIO_DIR:?set ASR_TEST_AUDIO_DIR to the test clips}
    mkdir -p "$CARRY/wheels"
    rm -f "$CARRY"/wheels/*.whl
    "$PY" -m pip wheel -q --no-deps -w "$CARRY/wheels" openai-whisper==20250625
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$CARRY/wheels" more-itertools==10.8.0
    "$PY" bench/pack_weights.py pack "$CKPT" "$CARRY/tiny.en.int8.pt.xz"
    PYTHONPATH=. "$PY" bench/make_corpus.py pack "$AUDIO" "$CARRY/audio.npz"
    tmp=$(mktemp -d)
    "$PY" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2010_x86_64 \
        -d "$tmp" imageio-ffmpeg==0.4.9
    (cd "$tmp" && unzip -q -o imageio_ffmpeg-*.whl 'imageio_ffmpeg/binaries/*')
    xz -9 -T0 -c "$tmp"/imageio_ffmpeg/binaries/ffmpeg-linux64-* > "$CARRY/ffmpeg.xz"
    rm -rf "$tmp"
    du -sh "$CARRY"
    exit 0
fi

OUT=${OUT:-/tmp/gpu_run_out}
mkdir -p "$OUT"
LOG=$OUT/gpu_run.log
MD=$OUT/RESULTS-gpu.md
export PYTHONUNBUFFERED=1
exec > >(tee -a "$LOG") 2>&1
step() { echo; echo "=== $(date +%T) $*"; }

step setup
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$CARRY"/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
# whisper imports numba at the top of whisper/timing.py but uses it only for word timestamps,
# which this benchmark does not ask for; numba+llvmlite wheels would not fit the 64 MiB carry.
if ! python3 -c "import numba" 2>/dev/null; then
    mkdir -p /tmp/site/numba
    printf 'def jit(*a, **k):\n    return a[0] if a and callable(a[0]) else (lambda f: f)\n' \
        > /tmp/site/numba/__init__.py
    echo "numba missing: using a no-op jit shim (word timestamps unused)"
fi
mkdir -p /tmp/bin
if ! command -v ffmpeg >/dev/null; then
    python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" \
        "$CARRY/ffmpeg.xz" /tmp/bin/ffmpeg && chmod +x /tmp/bin/ffmpeg
    export PATH=/tmp/bin:$PATH
fi
ffmpeg -version | head -1
python3 -c "import torch, whisper; print('torch', torch.__version__, 'whisper', whisper.__version__)"
python3 bench/pack_weights.py unpack "$CARRY/tiny.en.int8.pt.xz" /tmp/tiny.en.pt
python3 bench/make_corpus.py build "$CARRY/audio.npz" /tmp/corpus --files 64
echo "## GPU run $(date -u +%F)" > "$MD"

WAYS=${WAYS:-cli,loop,batched}
step "tiny.en: $WAYS (cli: 6 files spread over the corpus), beam 5"
timeout 330 python3 bench/transcribe_throughput.py --device cuda --model /tmp/tiny.en.pt \
    --files 64 --corpus /tmp/corpus --ways "$WAYS" --cli-files 6 \
    --step-modes "${STEP_MODES-graph,eager}" --batch-sizes "${BATCH_SIZES-16,32}" \
    --json "$OUT/tiny_en.json" --markdown "$MD"

for size in ${SIZES:-large-v3}; do
    step "random-weight $size: loop / batched, 32 tokens per window"
    python3 bench/random_checkpoint.py "$size" "/tmp/$size.pt" || continue
    timeout 150 python3 bench/transcribe_throughput.py --device cuda --model "/tmp/$size.pt" \
        --files 16 --corpus /tmp/corpus --ways loop,batched --fixed-len 32 \
        --batch-sizes 32 --markdown "$MD"
    rm -f "/tmp/$size.pt"
done
step done
