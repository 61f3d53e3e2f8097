"""Elysium: object-level perception in videos with a multimodal LLM (ECCV 2024)."""

__version__ = "0.1.0"
