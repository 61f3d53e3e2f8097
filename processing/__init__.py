"""Elysium's processor, box codec and task prompts; importing registers the processor with AutoProcessor."""

from transformers import AutoImageProcessor, AutoProcessor

from ..modeling_elysium import ElysiumConfig
from .boxes import BoxError, ParsedTrack, check_box, format_box, format_track, parse_box, parse_track
from .image_processing_elysium import ElysiumImageProcessor
from .processing_elysium import CHAT_TEMPLATE, IMAGE_TOKEN, SYSTEM_PROMPT, ElysiumProcessor, chat_template
from .prompts import PARAPHRASES, TASKS, task_prompt

AutoImageProcessor.register(ElysiumConfig, image_processor_classes={"pil": ElysiumImageProcessor}, exist_ok=True)
AutoProcessor.register(ElysiumConfig, ElysiumProcessor, exist_ok=True)

__all__ = [
    "BoxError",
    "CHAT_TEMPLATE",
    "ElysiumImageProcessor",
    "ElysiumProcessor",
    "IMAGE_TOKEN",
    "PARAPHRASES",
    "ParsedTrack",
    "SYSTEM_PROMPT",
    "TASKS",
    "chat_template",
    "check_box",
    "format_box",
    "format_track",
    "parse_box",
    "parse_track",
    "task_prompt",
]
