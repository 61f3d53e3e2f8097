"""Elysium: object-level perception in videos with a multimodal LLM, as a transformers package.

Every folder installs under the ``elysium.`` namespace (``hub`` and ``processing`` are taken
as top-level names on PyPI), so code imports ``elysium.processing``, ``elysium.hub`` and so on.
"""

from setuptools import setup

FOLDERS = [
    "modeling_elysium",
    "processing",
    "utils",
    "synthetic",
    "training",
    "evaluation",
    "inference",
    "hub",
    "models",
    "assets",
    "data_engine",  # `elysium data build`, the ElysiumTrack data engine
    "cli",  # the `elysium` command: the dispatcher over every folder's subcommands
]
# The data engine's extra; CI installs only `.[test]`, so the test extra names them too.
DATA = ["spacy>=3.7", "filterpy>=1.4.5"]

setup(
    name="elysium",
    version="0.1.0",
    description="Elysium (ECCV 2024): object tracking and description in videos with a multimodal LLM",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["elysium"] + [f"elysium.{name}" for name in FOLDERS],
    package_dir={"elysium": "elysium_namespace", **{f"elysium.{name}": name for name in FOLDERS}},
    package_data={
        "elysium.training": ["configs/*.yaml", "configs/accelerate/*.yaml"],
        # The shipped model is a save_pretrained folder (weights, processor, card; no code: the package loads it with
        # its own classes), installed whole; its name is not a Python identifier, so setuptools sees its files as data.
        "elysium.models": ["elysium-tiny/*", "elysium-tiny/**/*"],
        "elysium.assets": ["demo.mp4", "demo.json"],
    },
    install_requires=[
        "torch>=2.4",
        "transformers>=5.24",
        "accelerate>=1.0",
        "datasets>=3.0",
        "tokenizers>=0.21",
        "safetensors>=0.4",
        "trl>=1.0",
        "evaluate>=0.4",
        "av>=12",
        "pillow>=10",
        "numpy>=1.24",
        "pyyaml>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "huggingface_hub>=0.30",
    ],
    extras_require={
        "flash": ["flash-attn>=2.6"],
        "lora": ["peft>=0.13"],
        "eval": ["pycocoevalcap>=1.2"],
        "bench": ["opencv-contrib-python-headless>=4.8"],  # benchmarks/csrt_baseline.py
        "deepspeed": ["deepspeed>=0.19"],  # training/configs/accelerate/deepspeed_zero{2,3}.yaml
        "data": DATA,
        "test": [
            "pytest>=8",
            "hypothesis>=6",
            "six>=1.16",
            "got10k>=0.1.3",
            "pycocoevalcap>=1.2",
            "peft>=0.13",
            "ruff",
            *DATA,
        ],
    },
    entry_points={"console_scripts": ["elysium=elysium.cli:main"]},
)
