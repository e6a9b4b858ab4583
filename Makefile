# kfp-asr-summarize: set-up, tests and the local demo. GNU make; `make` lists the targets.
#
# Overrides (make VAR=value, or the environment):
#   PYTHON       interpreter that creates the venv (3.11-3.13)          [python3]
#   VENV         the virtual environment                               [.venv]
#   TORCH_SPEC   torch requirement installed before the package        [torch==2.13.0]
#   PIP_EXTRA    extra pip options for the torch install, e.g.
#                --index-url https://download.pytorch.org/whl/cpu (CPU-only wheel)
#   ASSETS       weights and binaries made by `make assets`            [~/.cache/kfp-asr-summarize]
#   DEMO_LLM     model `make demo` serves: smollm2 (SmolLM2 135M Instruct, 98 MB), gemma
#                (Gemma 3 270M base, 253 MB) or tiny (1 MB random weights, word salad) [smollm2]
#   LLM_ENDPOINT an OpenAI-compatible endpoint for `make demo`; no local server is started
#   LLM_MODEL    the model name to ask it for          [Qwen/Qwen2.5-7B-Instruct with LLM_ENDPOINT]
#   PYTEST_ARGS  extra pytest arguments for `make test`

SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
PIP_EXTRA ?=

ASSETS ?= $(HOME)/.cache/kfp-asr-summarize
ASSETS_DIR := $(abspath $(ASSETS))
WHISPER_CKPT := $(ASSETS_DIR)/tiny.en.pt
LLAMA_DIR := $(ASSETS_DIR)/llama.cpp
LLAMA_SERVER := $(LLAMA_DIR)/bin/llama-server
TINY_GGUF := $(ASSETS_DIR)/tiny-llama-test.gguf
SMOLLM2_GGUF := $(ASSETS_DIR)/demo-smollm2.gguf

# test material; a variable that is already set (e.g. by .ci/run) wins
ASR_TEST_WHISPER_CKPT ?= $(WHISPER_CKPT)
LLAMA_SERVER_BIN ?= $(LLAMA_SERVER)
ASR_TEST_LLM_GGUF ?= $(TINY_GGUF)
ASR_TEST_DEMO_GGUF ?= $(SMOLLM2_GGUF)
PYTEST_ARGS ?=

DEMO_LLM ?= smollm2
DEMO_GGUF := $(ASSETS_DIR)/demo-$(DEMO_LLM).gguf
DEMO_SERVER_ARGS_gemma := --no-jinja --chat-template gemma
DEMO_MODEL_smollm2 := smollm2-135m-instruct
DEMO_MODEL_gemma := gemma-3-270m
DEMO_MODEL_tiny := tiny-llama-test
DEMO_INPUT := $(abspath samples)
DEMO_OUTPUT := $(abspath demo-output)
DEMO_PID_FILE := $(abspath .cache/demo-llm.pid)
LLM_ENDPOINT ?=
LLM_MODEL ?= $(if $(LLM_ENDPOINT),Qwen/Qwen2.5-7B-Instruct,$(DEMO_MODEL_$(DEMO_LLM)))

.PHONY: help install assets test-assets test demo lint compile clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# system tools: ffmpeg (audio decoding; needed), and for the tests espeak-ng and sox (the
# synthesised corpus), protoc with the protobuf includes (tests/test_compile.py checks the KFP
# backend floor) and chromium (the report's browser test). As root they are installed with
# apt-get; otherwise a missing ffmpeg stops here and a missing test tool is named.
install: $(VENV)/.installed ## create .venv and install the package with [dev]; ffmpeg, espeak-ng, sox, protoc, chromium
	@missing=(); \
	command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg); \
	command -v espeak-ng >/dev/null || missing+=(espeak-ng); \
	command -v sox >/dev/null || missing+=(sox libsox-fmt-base); \
	command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/struct.proto ] || \
	  missing+=(protobuf-compiler libprotobuf-dev); \
	command -v chromium >/dev/null || missing+=(chromium); \
	[ $${#missing[@]} = 0 ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $${missing[*]} with apt-get"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$${missing[@]}"; \
	elif [[ " $${missing[*]} " == *" ffmpeg "* ]]; then \
	  echo "ffmpeg and ffprobe are needed and missing: install ffmpeg" \
	    "(Debian/Ubuntu: sudo apt-get install ffmpeg; macOS: brew install ffmpeg)" >&2; \
	  exit 1; \
	else \
	  echo "the tests need $${missing[*]}: install them" \
	    "(Debian/Ubuntu: sudo apt-get install $${missing[*]})" >&2; \
	fi

$(VENV)/.installed: setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_EXTRA) '$(TORCH_SPEC)'
	$(PY) -m pip install -e '.[dev]'
	touch $@

# the demo model SmolLM2 is test material too: the structured-summary test runs it
assets: install ## make tiny.en, llama-server, the tiny test GGUF and the SmolLM2 GGUF (in ASSETS)
	$(PY) tools/get_whisper_tiny_en.py $(WHISPER_CKPT)
	PYTHON=$(PY) bash tools/build_llama_server.sh $(LLAMA_DIR)
	$(PY) tools/make_tiny_gguf.py $(TINY_GGUF)
	$(PY) tools/get_demo_llm.py smollm2 $(SMOLLM2_GGUF)

test-assets: assets ## the same as assets (the name the tests' skip messages use)

test: install assets ## run the tests (fails when pytest collects none)
	@set +e; \
	ASR_TEST_WHISPER_CKPT='$(ASR_TEST_WHISPER_CKPT)' LLAMA_SERVER_BIN='$(LLAMA_SERVER_BIN)' \
	  ASR_TEST_LLM_GGUF='$(ASR_TEST_LLM_GGUF)' ASR_TEST_DEMO_GGUF='$(ASR_TEST_DEMO_GGUF)' \
	  $(PY) -m pytest $(PYTEST_ARGS); \
	rc=$$?; \
	if [ $$rc = 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; \
	exit $$rc

# run-local ends with the files table (audio s, status, summary beginning) and the report's
# path; llama-server runs with tools/llm_server.py's measured settings (one thread, no polling).
demo: install assets ## transcribe and summarize samples/ into demo-output/
	@set -euo pipefail; \
	if [ -n '$(LLM_ENDPOINT)' ]; then \
	  endpoint='$(LLM_ENDPOINT)'; \
	else \
	  $(PY) tools/get_demo_llm.py $(DEMO_LLM) $(DEMO_GGUF); \
	  trap '$(PY) tools/llm_server.py stop --pid-file $(DEMO_PID_FILE)' EXIT; \
	  endpoint=$$($(PY) tools/llm_server.py start --bin $(LLAMA_SERVER) --model $(DEMO_GGUF) \
	    --alias '$(LLM_MODEL)' --pid-file $(DEMO_PID_FILE) -- $(DEMO_SERVER_ARGS_$(DEMO_LLM))); \
	fi; \
	$(VENV)/bin/kfp-asr run-local --input $(DEMO_INPUT) --output $(DEMO_OUTPUT) \
	  --whisper-model $(WHISPER_CKPT) --llm-endpoint "$$endpoint" --llm-model '$(LLM_MODEL)'

lint: install ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

compile: install ## compile the pipeline into compiled/
	$(VENV)/bin/kfp-asr compile

clean: ## remove demo output and caches (keeps .venv and ASSETS)
	rm -rf demo-output .cache .pytest_cache .ruff_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
