"""Elysium's config and model, registered with transformers' Auto classes on import."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
)

from .configuration_elysium import ElysiumConfig
from .modeling_elysium import (
    ElysiumForConditionalGeneration,
    ElysiumModel,
    ElysiumMultiModalProjector,
    ElysiumPreTrainedModel,
    ElysiumTSelector,
)

TSelector = ElysiumTSelector  # the paper's name

AutoConfig.register("elysium", ElysiumConfig, exist_ok=True)
# AutoModel gives the generating model, as the design card's usage expects (`AutoModel.from_pretrained(...)`).
for _auto in (AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText):
    _auto.register(ElysiumConfig, ElysiumForConditionalGeneration, exist_ok=True)

__all__ = [
    "ElysiumConfig",
    "ElysiumForConditionalGeneration",
    "ElysiumModel",
    "ElysiumMultiModalProjector",
    "ElysiumPreTrainedModel",
    "ElysiumTSelector",
    "TSelector",
]
