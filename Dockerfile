# The project image: every component of kfp-asr-summarize runs on it as a KFP lightweight
# component (the package is installed here, so pods install nothing at start).
#
#   docker build -t registry.example.com/kfp-asr-summarize:0.1.0 .
#   docker build --build-arg WHISPER_MODEL=large-v3 -t …:0.1.0-large-v3 .   # bake weights in
#
# The base brings CUDA, cuDNN and a CUDA build of PyTorch (Python 3.11); openai-whisper
# accepts the torch that is already there, so pip adds no second torch.
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

# Optional: a Whisper model name (tiny.en, small, medium, large-v3, turbo, ...) whose
# weights are downloaded at build time into WHISPER_CACHE_DIR, for clusters without internet.
ARG WHISPER_MODEL=""

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WHISPER_CACHE_DIR=/opt/whisper-cache

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin app

WORKDIR /tmp/kfp-asr-summarize
COPY setup.py pyproject.toml README.md ./
COPY components ./components
COPY pipelines ./pipelines
RUN python -m pip install . \
    && python -c "import kfp, whisper, components.transcribe.engine" \
    && cd / && rm -rf /tmp/kfp-asr-summarize

RUN mkdir -p "${WHISPER_CACHE_DIR}" \
    && if [ -n "${WHISPER_MODEL}" ]; then \
         python -c "import os, whisper; whisper.load_model('${WHISPER_MODEL}', device='cpu', download_root=os.environ['WHISPER_CACHE_DIR'])"; \
       fi \
    && chown -R 10001:10001 "${WHISPER_CACHE_DIR}"

USER 10001:10001
WORKDIR /home/app
