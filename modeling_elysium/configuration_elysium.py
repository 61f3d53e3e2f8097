"""Elysium configuration: a CLIP vision tower, the T-Selector, a projector and a Llama LLM."""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec


@strict
class ElysiumConfig(PreTrainedConfig):
    r"""
    Configuration of [`ElysiumForConditionalGeneration`]. Defaults give Elysium-7B: CLIP-ViT-L/14 at 336 px
    (576 patches a frame) and Vicuna-7B v1.5, with the T-Selector keeping 108 tokens a frame (the paper's choice).

    t_selector_tokens (`int`, defaults to 108):
        Visual tokens kept per frame by the T-Selector's top-k; the processor expands each `<image>` into this many.
    t_selector_straight_through (`bool`, defaults to `True`):
        Multiply the kept tokens by `score / score.detach()` so the gate learns (forward value unchanged). `False`
        reproduces the released model, whose argsort selection gives the gate no gradient.
    image_token_id (`int`, defaults to 32000):
        Id of the `<image>` placeholder token.
    vision_feature_layer (`int`, defaults to -2):
        Hidden state of the vision tower fed to the T-Selector (as LLaVA-1.5).
    vision_feature_select_strategy (`str`, defaults to `"default"`):
        `"default"` drops the CLS token, `"full"` keeps it.
    projector_hidden_act (`str`, defaults to `"gelu"`):
        Activation between the projector's two linear layers.
    track_search_context (`float`, *optional*):
        How the model was trained to track: each clip cropped to a square this many times the target's last box
        (a search region; `ElysiumTracker` does the same). `None`, as the released model, tracks on whole frames.
    track_clip_len (`int`, *optional*):
        Frames a tracking clip, as the model was trained (its longest clips); `ElysiumTracker`'s default. `None`
        (the released model): 8, as the paper tracks.
    track_views (`int`, *optional*):
        Test-time views of each search region `ElysiumTracker` combines by default (the square, mirrored, shifted
        by half a patch, ...), as tuned on held-out videos. `None`: one, the square alone.
    track_box_scale (`float`, *optional*):
        Factor `ElysiumTracker` widens each box it reports by, about its centre (within the frame), as calibrated
        on validation videos: a small model's answers come out smaller than the target, and a box a little wider
        than the target loses less overlap to an error in its position. The box carried to the next clip stays as
        answered. `None`: 1, the boxes as answered.

    Example:

    ```python
    >>> from elysium.modeling_elysium import ElysiumConfig, ElysiumForConditionalGeneration
    >>> config = ElysiumConfig()  # Elysium-7B shapes
    >>> model = ElysiumForConditionalGeneration(config)  # random weights
    ```"""

    model_type = "elysium"
    attribute_map = {"image_token_index": "image_token_id"}

    sub_configs_defaults = {
        # openai/clip-vit-large-patch14-336's vision_config (its hidden_act quick_gelu and layer_norm_eps 1e-5 are
        # CLIPVisionConfig's defaults, written out so the 7B never depends on them).
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="clip_vision_model",
            init_kwargs={
                "intermediate_size": 4096,
                "hidden_size": 1024,
                "patch_size": 14,
                "image_size": 336,
                "num_channels": 3,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "projection_dim": 768,
                "hidden_act": "quick_gelu",
                "layer_norm_eps": 1e-5,
            },
        ),
        # lmsys/vicuna-7b-v1.5's config.json, field by field: LlamaConfig's own defaults differ in rms_norm_eps
        # (1e-6), max_position_embeddings (2048) and pad_token_id (None), which would put every RMSNorm of a
        # converted Elysium-7B off.
        "text_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="llama",
            init_kwargs={
                "vocab_size": 32000,
                "hidden_size": 4096,
                "intermediate_size": 11008,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 32,
                "hidden_act": "silu",
                "max_position_embeddings": 4096,
                "rms_norm_eps": 1e-5,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
                "attention_bias": False,
                "bos_token_id": 1,
                "eos_token_id": 2,
                "pad_token_id": 0,
                "tie_word_embeddings": False,
            },
        ),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    image_token_id: int = 32000
    t_selector_tokens: int = 108
    t_selector_straight_through: bool = True
    projector_hidden_act: str = "gelu"
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    vision_feature_layer: int = -2
    tie_word_embeddings: bool = False
    track_search_context: float | None = None
    track_clip_len: int | None = None
    track_views: int | None = None
    track_box_scale: float | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if not 1 <= self.t_selector_tokens <= self.num_patches:
            raise ValueError(
                f"t_selector_tokens={self.t_selector_tokens} must lie in 1..{self.num_patches}, the patches a frame "
                f"gives with image_size={self.vision_config.image_size} and patch_size={self.vision_config.patch_size}."
            )
        if self.track_search_context is not None and not self.track_search_context >= 1.0:
            raise ValueError(
                f"track_search_context={self.track_search_context}: a search region holds the whole target, so give "
                "a factor >= 1 (e.g. 3.0), or None to track on whole frames."
            )
        if self.track_clip_len is not None and not (isinstance(self.track_clip_len, int) and self.track_clip_len >= 2):
            raise ValueError(
                f"track_clip_len={self.track_clip_len!r}: clips overlap by one frame, so give an int >= 2 (e.g. 8), "
                "or None for the paper's 8."
            )
        if self.track_views is not None and not (isinstance(self.track_views, int) and self.track_views >= 1):
            raise ValueError(
                f"track_views={self.track_views!r}: give a number of test-time views >= 1, or None for one."
            )
        if self.track_box_scale is not None and not (
            isinstance(self.track_box_scale, (int, float)) and 0 < self.track_box_scale <= 4
        ):
            raise ValueError(
                f"track_box_scale={self.track_box_scale!r}: give a factor in (0, 4] the reported boxes are widened "
                "by (e.g. 1.25), or None to report them as answered."
            )

    @property
    def num_patches(self) -> int:
        """Tokens a frame gives the T-Selector: the patch grid, plus CLS under the "full" strategy."""
        grid = (self.vision_config.image_size // self.vision_config.patch_size) ** 2
        return grid + (1 if self.vision_feature_select_strategy == "full" else 0)


__all__ = ["ElysiumConfig"]
