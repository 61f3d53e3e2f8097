"""PyTorch Elysium: LLaVA-style video MLLM whose T-Selector keeps the top-k patch tokens of each frame.

Follows transformers' `models/llava`: the vision tower and the language model are transformers' own modules built
with `AutoModel.from_config`; what is written here is only what Elysium adds (the T-Selector) and the glue.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import BaseModelOutputWithPast, BaseModelOutputWithPooling, ModelOutput
from transformers.modeling_utils import PreTrainedModel
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import select_hidden_states

from .configuration_elysium import ElysiumConfig

IMAGE_TOKEN = "<image>"


@dataclass
class ElysiumModelOutputWithPast(BaseModelOutputWithPast):
    """Language-model outputs plus the projected frame tokens (`image_hidden_states`) and the kept patch indices."""

    image_hidden_states: torch.Tensor | None = None
    selected_patches: torch.LongTensor | None = None


@dataclass
class ElysiumCausalLMOutputWithPast(ModelOutput):
    """Causal LM outputs of Elysium; `selected_patches` tells which patches of each frame the T-Selector kept."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: Cache | None = None  # transformers >= 5.24 names the KV cache `cache` (was `past_key_values`)
    hidden_states: tuple[torch.Tensor] | None = None
    attentions: tuple[torch.Tensor] | None = None
    image_hidden_states: torch.Tensor | None = None
    selected_patches: torch.LongTensor | None = None


class ElysiumTSelector(nn.Module):
    """Keeps the `t_selector_tokens` highest-scoring patches of each frame, in patch order.

    The released parameterization (so its weights load 1:1): a gate `g = pre_proj(x)` gives one logit per patch,
    `scores = softmax(g @ trans_weight + trans_bias)`, then top-k. The released top-k is an argsort with no gradient
    path, so its gate never trains; here the kept tokens are multiplied by `s / s.detach()` (straight-through: the
    value is unchanged, the gate gets a gradient) unless `config.t_selector_straight_through` is off.
    """

    def __init__(self, config: ElysiumConfig):
        super().__init__()
        num_patches = config.num_patches
        self.num_tokens = config.t_selector_tokens
        self.straight_through = config.t_selector_straight_through
        self.pre_proj = nn.Linear(config.vision_config.hidden_size, 1)
        self.trans_weight = nn.Parameter(torch.zeros(num_patches, num_patches))
        self.trans_bias = nn.Parameter(torch.zeros(num_patches))

    def log_scores(self, features: torch.Tensor) -> torch.Tensor:
        """Log of the softmax score of every patch, `(frames, patches)`, in float32."""
        gate = self.pre_proj(features).squeeze(-1)
        logits = gate @ self.trans_weight.to(gate.dtype) + self.trans_bias.to(gate.dtype)
        return logits.float().log_softmax(dim=-1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.LongTensor]:
        """`(frames, patches, dim)` -> kept tokens `(frames, k, dim)` and their patch indices `(frames, k)`."""
        if features.shape[1] != self.trans_weight.shape[0]:
            raise ValueError(
                f"The T-Selector was built for {self.trans_weight.shape[0]} patches a frame but got "
                f"{features.shape[1]}; the frames must have the size the vision config names (image_size)."
            )
        log_scores = self.log_scores(features)  # top-k of log-softmax = top-k of softmax
        kept = log_scores.topk(self.num_tokens, dim=-1).indices.sort(dim=-1).values
        tokens = features.gather(1, kept.unsqueeze(-1).expand(-1, -1, features.shape[-1]))
        if self.straight_through:
            # s / s.detach() written as exp(log s - log s.detach()): exactly 1 forward, the same gradient, and no
            # 0/0 when a kept score underflows.
            kept_log = log_scores.gather(1, kept)
            tokens = tokens * (kept_log - kept_log.detach()).exp().unsqueeze(-1).to(tokens.dtype)
        return tokens, kept


class ElysiumMultiModalProjector(nn.Module):
    """Two-layer MLP from the vision width to the LLM width (the released `llm_proj`)."""

    def __init__(self, config: ElysiumConfig):
        super().__init__()
        self.linear_1 = nn.Linear(config.vision_config.hidden_size, config.text_config.hidden_size)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(config.text_config.hidden_size, config.text_config.hidden_size)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(image_features)))


class ElysiumPreTrainedModel(PreTrainedModel):
    config: ElysiumConfig
    config_class = ElysiumConfig
    base_model_prefix = "model"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _skip_keys_device_placement = ["cache"]
    _no_split_modules = ["CLIPEncoderLayer", "LlamaDecoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, ElysiumTSelector):
            # Unlike the released zero init, a small random W makes the selection depend on content from step one.
            std = getattr(self.config.get_text_config(), "initializer_range", 0.02)
            nn.init.normal_(module.trans_weight, mean=0.0, std=std)
            nn.init.zeros_(module.trans_bias)


class ElysiumModel(ElysiumPreTrainedModel):
    """Vision tower, T-Selector, projector and language model, without the LM head."""

    def __init__(self, config: ElysiumConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.t_selector = ElysiumTSelector(config)
        self.multi_modal_projector = ElysiumMultiModalProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    @merge_with_config_defaults
    @can_return_tuple
    @select_hidden_states("vision_feature_layer")
    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        vision_feature_layer: int | None = None,
        vision_feature_select_strategy: str | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Frames `(n, 3, H, W)` -> `pooler_output`: one `(t_selector_tokens, hidden)` tensor a frame."""
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must be (frames, 3, height, width); got shape {tuple(pixel_values.shape)}. "
                "Batch the frames of every sample along the first axis, as ElysiumProcessor does."
            )
        image_outputs = self.vision_tower(pixel_values, return_dict=True, **kwargs)
        features = image_outputs.hidden_states[vision_feature_layer]
        if vision_feature_select_strategy == "default":
            features = features[:, 1:]
        kept, indices = self.t_selector(features)
        image_features = self.multi_modal_projector(kept)
        image_outputs.pooler_output = list(image_features)
        image_outputs.selected_patches = indices
        return image_outputs

    def get_placeholder_mask(
        self, input_ids: torch.LongTensor | None, inputs_embeds: torch.Tensor, image_features: torch.Tensor
    ) -> torch.Tensor:
        """Where the `<image>` tokens are; fails with counts when they do not match the frame features."""
        if input_ids is None:
            image_embed = self.get_input_embeddings()(
                torch.tensor(self.config.image_token_id, dtype=torch.long, device=inputs_embeds.device)
            )
            mask = (inputs_embeds == image_embed).all(-1)
        else:
            mask = input_ids == self.config.image_token_id
        n_tokens = int(mask.sum())
        if n_tokens != image_features.shape[0]:
            per_frame = self.config.t_selector_tokens
            raise ValueError(
                f"The text holds {n_tokens} image tokens but the frames give {image_features.shape[0]} features "
                f"({image_features.shape[0] // per_frame} frames x {per_frame}). Build inputs with ElysiumProcessor, "
                "which writes one `<image>` per frame and expands it to t_selector_tokens tokens."
            )
        return mask.unsqueeze(-1).expand_as(inputs_embeds)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        vision_feature_layer: int | None = None,
        vision_feature_select_strategy: str | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs,
    ) -> ElysiumModelOutputWithPast:
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("Give exactly one of input_ids or inputs_embeds.")
        if pixel_values is not None and mm_encoder_outputs is not None and mm_encoder_outputs.get("image"):
            raise ValueError("Give pixel_values or pre-computed mm_encoder_outputs, not both.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)

        mm_encoder_outputs = mm_encoder_outputs if mm_encoder_outputs is not None else {}
        if mm_encoder_outputs.get("image") is None and pixel_values is not None:
            mm_encoder_outputs["image"] = self.get_image_features(
                pixel_values=pixel_values.to(self.vision_tower.dtype),
                vision_feature_layer=vision_feature_layer,
                vision_feature_select_strategy=vision_feature_select_strategy,
                return_dict=True,
            )

        image_features = selected = None
        if mm_encoder_outputs.get("image") is not None:
            encoded = mm_encoder_outputs["image"]
            image_features = torch.cat(list(encoded.pooler_output), dim=0).to(inputs_embeds.device, inputs_embeds.dtype)
            selected = getattr(encoded, "selected_patches", None)
            mask = self.get_placeholder_mask(input_ids, inputs_embeds, image_features)
            inputs_embeds = inputs_embeds.masked_scatter(mask, image_features)

        max_positions = getattr(self.config.text_config, "max_position_embeddings", None)
        # Padding-free rows hold several samples: the limit applies to each sample's positions, not the row.
        longest = inputs_embeds.shape[1] if position_ids is None else int(position_ids.max()) + 1
        if max_positions is not None and cache is None and longest > max_positions:
            raise ValueError(
                f"The input is {longest} tokens long but the language model holds "
                f"{max_positions}; give fewer frames (each costs {self.config.t_selector_tokens} tokens plus its "
                "timestamp) or track the video in clips."
            )

        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        return ElysiumModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_hidden_states=image_features,
            selected_patches=selected,
        )


class ElysiumForConditionalGeneration(ElysiumPreTrainedModel, GenerationMixin):
    """Elysium with its LM head: tracks (SOT, RSOT), describes (Video-REG) and grounds objects as text."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: ElysiumConfig):
        super().__init__(config)
        self.model = ElysiumModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        return self.model.get_image_features(pixel_values=pixel_values, **kwargs)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        vision_feature_layer: int | None = None,
        vision_feature_select_strategy: str | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs,
    ) -> ElysiumCausalLMOutputWithPast:
        """Attention kwargs (varlen `cu_seq_lens_*`, `max_length_*`) pass through to the language model only."""
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            vision_feature_layer=vision_feature_layer,
            vision_feature_select_strategy=vision_feature_select_strategy,
            mm_encoder_outputs=mm_encoder_outputs,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, slice_indices, :])

        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return ElysiumCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_hidden_states=outputs.image_hidden_states,
            selected_patches=outputs.selected_patches,
        )

    @classmethod
    def from_vision_text_pretrained(
        cls,
        vision_model_name_or_path: str,
        text_model_name_or_path: str,
        t_selector_tokens: int = 108,
        trust_remote_code: bool = False,
        **config_kwargs,
    ) -> "ElysiumForConditionalGeneration":
        """A fresh Elysium from a pretrained CLIP vision tower and a pretrained Llama/Vicuna, as the paper starts.

        Adds `<image>` to the LLM's tokenizer (resizing the embeddings); the T-Selector and projector start random.
        Build the matching processor with `ElysiumProcessor.from_vision_text_pretrained` on the same paths.
        """
        trust = {"trust_remote_code": trust_remote_code}  # never run the parts' own code unless asked
        vision = AutoModel.from_pretrained(vision_model_name_or_path, **trust)
        vision = getattr(vision, "vision_model", vision)  # a full CLIPModel checkpoint gives its vision half
        language = AutoModelForCausalLM.from_pretrained(text_model_name_or_path, **trust)
        tokenizer = AutoTokenizer.from_pretrained(text_model_name_or_path, **trust)
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
        image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if len(tokenizer) > language.get_input_embeddings().num_embeddings:
            language.resize_token_embeddings(len(tokenizer), mean_resizing=True)

        config = ElysiumConfig(
            vision_config=AutoConfig.for_model(**vision.config.to_dict()),
            text_config=language.config,
            image_token_id=image_token_id,
            t_selector_tokens=t_selector_tokens,
            **config_kwargs,
        )
        with torch.device("meta"):
            model = cls(config)
        model.model.vision_tower = vision
        model.model.language_model = language.model
        model.lm_head = language.lm_head
        # Only the T-Selector and projector are new; build and initialize them on the CPU.
        model.model.t_selector = ElysiumTSelector(config)
        model.model.multi_modal_projector = ElysiumMultiModalProjector(config)
        for module in (model.model.t_selector, model.model.multi_modal_projector):
            module.apply(model._init_weights)
        model.to(language.dtype)
        return model


__all__ = [
    "ElysiumTSelector",
    "ElysiumMultiModalProjector",
    "ElysiumPreTrainedModel",
    "ElysiumModel",
    "ElysiumForConditionalGeneration",
]
