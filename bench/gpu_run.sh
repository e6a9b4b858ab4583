#!/usr/bin/env bash
# Transcription throughput benchmark on the GPU machine.
#
# 1. Here (a machine with PyPI, the test clips and tiny.en), once:
#      bash bench/gpu_run.sh prepare
#    fills .devcarry/ (git-ignored, ~45 MiB): openai-whisper and more-itertools wheels,
#    silero-vad 6.2.3 unpacked with its TorchScript model only (sitepkgs/, 2.3 MiB), tiny.en
#    int8-packed (36.5 MiB; XZ=1 compresses it to 26 MiB, slowly), the clips as one int16
#    archive, and, with WITH_CLI=1, a static ffmpeg (imageio-ffmpeg 0.4.9's) for the CLI way.
#    For the HF peer, also: cp -r ../shared/peers .devcarry/peers
# 2. On the device (python3 with torch and CUDA; no network):
#      device run: command "PHASES=... bash bench/gpu_run.sh", carry [".devcarry"]
#    It unpacks everything under /tmp and runs the phases named in PHASES (default: short):
#      short    the 64-file corpus: cli/loop/batched with tiny.en (beam 5; batched at 64 with
#               CUDA-graph and eager steps, then at 16 and 32), then random-weight checkpoints
#               (SIZES, default large-v3) loop/batched at 32 tokens per window (about 7 min)
#      long8    8 files x 5 min: LONG_WAYS (loop,batched,chunked; also chunked-prompt and the
#               diagnostics batched-bs1, batched-fp32) with tiny.en, chunked also at
#               LONG_BATCHES (128,256), then the HF peer's HF_MODES (generate pipeline), each
#               within HF_TIMEOUT seconds and warmed up on one file (HF_MODES=none skips
#               them); PROFILE=1 adds a profiled chunked run (stage times, decoder steps,
#               rounds)
#      long4    4 files x 15 min: the same
#      settings chunked with Silero settings (PADS x THRESHOLDS) on 8 x 5 and 4 x 15 min vs
#               batched (bench/chunk_settings.py), then batched with fp32 vs fp16 weights
#      models   random-weight medium and large-v3 on 4 files x 15 min, 80 tokens per window:
#               batched and chunked as on slices of FREE_GIB (139,10,5: the whole H200 first,
#               since a failed CUDA-graph capture on a small slice turns graphs off for the
#               process), also at BATCH_LIMITS (256) in place of the device default
#      prof     bench/step_profile.py: GPU busy time against the wall and the top operators of
#               chunked at PROF_BATCH (256) with tiny.en and random-weight PROF_SIZES (large-v3)
#    The environment narrows it: WAYS (cli,loop,batched), STEP_MODES (graph,eager), BATCH_SIZES
#    (16,32; "" for none), SIZES (large-v3; also small, medium; " " for none).
#    Results: $OUT/RESULTS-gpu.md (tables for bench/RESULTS.md), $OUT/gpu_run.log, JSON files.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=${CARRY:-.devcarry}

if [ "${1:-run}" = prepare ]; then
    set -e
    PY=${PYTHON:-.venv/bin/python}
    CKPT=${ASR_TEST_WHISPER_CKPT:-$HOME/.cache/kfp-asr-summarize/tiny.en.pt}
    AUDIO=${ASR_TEST_AUDIO_DIR:?set ASR_TEST_AUDIO_DIR to the test clips}
    mkdir -p "$CARRY/wheels"
    rm -f "$CARRY"/wheels/*.whl
    "$PY" -m pip wheel -q --no-deps -w "$CARRY/wheels" openai-whisper==20250625
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$CARRY/wheels" more-itertools==10.8.0
    tmp=$(mktemp -d)
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" silero-vad==6.2.3
    rm -rf "$CARRY/sitepkgs" && mkdir -p "$CARRY/sitepkgs"
    (cd "$tmp" && unzip -q -o silero_vad-*.whl 'silero_vad/*.py' 'silero_vad/data/silero_vad.jit' \
        -d "$OLDPWD/$CARRY/sitepkgs")
    rm -rf "$tmp"
    "$PY" bench/pack_weights.py pack "$CKPT" "$CARRY/tiny.en.int8.pt${XZ:+.xz}"
    PYTHONPATH=. "$PY" bench/make_corpus.py pack "$AUDIO" "$CARRY/audio.npz"
    if [ -z "${WITH_CLI:-}" ]; then
        rm -f "$CARRY/ffmpeg.xz"
        du -sh "$CARRY"
        exit 0
    fi
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
export PYTHONPATH=/tmp/site:$CARRY/sitepkgs:$PWD
# whisper imports numba at the top of whisper/timing.py but uses it only for word timestamps,
# which this benchmark does not ask for; numba+llvmlite wheels would not fit the 64 MiB carry.
if ! python3 -c "import numba" 2>/dev/null; then
    mkdir -p /tmp/site/numba
    printf 'def jit(*a, **k):\n    return a[0] if a and callable(a[0]) else (lambda f: f)\n' \
        > /tmp/site/numba/__init__.py
    echo "numba missing: using a no-op jit shim (word timestamps unused)"
fi
# components.common.storage imports minio (S3), which no benchmark here touches; its wheel's
# dependencies (argon2-cffi, pycryptodome) are not in the image.
if ! python3 -c "import minio" 2>/dev/null; then
    mkdir -p /tmp/site/minio
    printf 'class Minio:\n    pass\n' > /tmp/site/minio/__init__.py
    printf 'class S3Error(Exception):\n    pass\n' > /tmp/site/minio/error.py
    echo "minio missing: using a stub (no S3 in the benchmarks)"
fi
mkdir -p /tmp/bin
if ! command -v ffmpeg >/dev/null && [ -f "$CARRY/ffmpeg.xz" ]; then
    python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" \
        "$CARRY/ffmpeg.xz" /tmp/bin/ffmpeg && chmod +x /tmp/bin/ffmpeg
    export PATH=/tmp/bin:$PATH
fi
ffmpeg -version 2>/dev/null | head -1
python3 -c "import torch, whisper; print('torch', torch.__version__, 'whisper', whisper.__version__)"
WEIGHTS=$(ls "$CARRY"/tiny.en.int8.pt* | head -1)
python3 bench/pack_weights.py unpack "$WEIGHTS" /tmp/tiny.en.pt
python3 -c "import silero_vad, torch; print('silero-vad from', silero_vad.__file__)"
python3 bench/make_corpus.py build "$CARRY/audio.npz" /tmp/corpus --files 64
echo "## GPU run $(date -u +%F) PHASES=${PHASES:-short}" >> "$MD"

PHASES=${PHASES:-short}
TT="python3 bench/transcribe_throughput.py --device cuda"
HF="python3 $CARRY/peers/hf_whisper_bench.py --model $WEIGHTS --device cuda"
HF="$HF --dtype float16 --attn sdpa --num-beams 5 --modes generate,pipeline"

for phase in $PHASES; do
case $phase in
short)
    python3 bench/make_corpus.py build "$CARRY/audio.npz" /tmp/corpus --files 64
    WAYS=${WAYS:-cli,loop,batched}
    step "tiny.en: $WAYS (cli: 6 files spread over the corpus), beam 5"
    timeout 330 $TT --model /tmp/tiny.en.pt \
        --files 64 --corpus /tmp/corpus --ways "$WAYS" --cli-files 6 \
        --step-modes "${STEP_MODES-graph,eager}" --batch-sizes "${BATCH_SIZES-16,32}" \
        --json "$OUT/tiny_en.json" --markdown "$MD"
    for size in ${SIZES:-large-v3}; do
        step "random-weight $size: loop / batched, 32 tokens per window"
        python3 bench/random_checkpoint.py "$size" "/tmp/$size.pt" || continue
        timeout 150 $TT --model "/tmp/$size.pt" \
            --files 16 --corpus /tmp/corpus --ways loop,batched --fixed-len 32 \
            --batch-sizes 32 --markdown "$MD"
        rm -f "/tmp/$size.pt"
    done
    ;;
long8 | long4)
    if [ "$phase" = long8 ]; then n=8 sec=300; else n=4 sec=900; fi
    ways=${LONG_WAYS:-loop,batched,chunked}
    [ -d "/tmp/$phase" ] || python3 bench/make_corpus.py build "$CARRY/audio.npz" "/tmp/$phase" --files $n --seconds $sec
    if [ "$ways" != none ]; then
        step "tiny.en, $n files x $sec s: $ways"
        timeout 420 $TT --model /tmp/tiny.en.pt --files $n --corpus "/tmp/$phase" --ways "$ways" \
            --step-modes graph --batch-sizes "${LONG_BATCHES-128,256}" --max-wer-gap 0.005 \
            --json "$OUT/$phase.json" --markdown "$MD"
    fi
    if [ -n "${PROFILE:-}" ]; then
        step "tiny.en, $n files x $sec s: chunked, profiled (synchronized stages: slower)"
        timeout 120 $TT --model /tmp/tiny.en.pt --files $n --corpus "/tmp/$phase" --ways chunked \
            --step-modes graph --batch-sizes 256 --profile --markdown "$MD" | tail -8
    fi
    if [ "${HF_MODES:-}" != none ] && [ -f "$CARRY/peers/hf_whisper_bench.py" ]; then
        for mode in ${HF_MODES:-generate pipeline}; do
            if [ $mode = generate ]; then bs=$n; else bs=64; fi
            step "HF peer, $n files x $sec s: $mode (batch $bs)"
            timeout "${HF_TIMEOUT:-240}" $HF --corpus "/tmp/$phase" --batch-sizes $bs --modes $mode \
                --warmup-files 1 \
                --json "$OUT/hf_${phase}_$mode.json" 2>&1 | grep -E "SUMMARY|Error|error"
        done
    fi
    ;;
settings)
    [ -d /tmp/long8 ] || python3 bench/make_corpus.py build "$CARRY/audio.npz" /tmp/long8 --files 8 --seconds 300
    [ -d /tmp/long4 ] || python3 bench/make_corpus.py build "$CARRY/audio.npz" /tmp/long4 --files 4 --seconds 900
    step "chunked: Silero settings (pad x threshold) on 8 x 300 s and 4 x 900 s, vs batched"
    timeout 300 python3 bench/chunk_settings.py --device cuda --model /tmp/tiny.en.pt \
        --corpus /tmp/long8 --corpus /tmp/long4 --pads "${PADS:-200,400,600,1000}" \
        --thresholds "${THRESHOLDS:-0.5,0.35}" --batch-sizes 128,256 --json "$OUT/settings.json" \
        | tee -a "$MD"
    for w in fp32 fp16; do
        step "tiny.en weights $w: batched on 8 x 300 s"
        timeout 90 $TT --model /tmp/tiny.en.pt --files 8 --corpus /tmp/long8 --ways batched \
            --step-modes graph --weights $w --markdown "$MD" | tail -3
    done
    ;;
models)
    [ -d /tmp/long4 ] || python3 bench/make_corpus.py build "$CARRY/audio.npz" /tmp/long4 --files 4 --seconds 900
    for size in ${SIZES:-medium large-v3}; do
        step "random-weight $size, 4 files x 900 s, 80 tokens per window: batched / chunked at 5, 10 GiB and the whole GPU"
        python3 bench/random_checkpoint.py "$size" "/tmp/$size.pt" || continue
        timeout ${MODEL_TIMEOUT:-240} $TT --model "/tmp/$size.pt" --files 4 --corpus /tmp/long4 --ways none \
            --fixed-len 80 --step-modes graph --free-gib "${FREE_GIB:-139,10,5}" \
            --batch-limits "${BATCH_LIMITS-256}" \
            --json "$OUT/models_$size.json" --markdown "$MD"
        rm -f "/tmp/$size.pt"
    done
    ;;
prof)
    [ -d /tmp/long4 ] || python3 bench/make_corpus.py build "$CARRY/audio.npz" /tmp/long4 --files 4 --seconds 900
    step "profile: tiny.en chunked at ${PROF_BATCH:-256}, 4 files x 900 s"
    timeout 240 python3 bench/step_profile.py --model /tmp/tiny.en.pt --corpus /tmp/long4 \
        --way chunked --batch-size "${PROF_BATCH:-256}" --out "$OUT"
    for size in ${PROF_SIZES:-large-v3}; do
        step "profile: random-weight $size chunked at ${PROF_BATCH:-256}, 80 tokens per window"
        python3 bench/random_checkpoint.py "$size" "/tmp/$size.pt" || continue
        timeout 240 python3 bench/step_profile.py --model "/tmp/$size.pt" --corpus /tmp/long4 \
            --way chunked --batch-size "${PROF_BATCH:-256}" --fixed-len 80 --out "$OUT"
    done
    ;;
esac
done
step done
