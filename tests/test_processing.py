"""The processor writes the released prompt format byte for byte, and reads boxes back without ever crashing."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoProcessor, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from elysium.modeling_elysium import ElysiumForConditionalGeneration
from elysium.processing import (
    BoxError,
    ElysiumProcessor,
    chat_template,
    check_box,
    format_box,
    format_track,
    parse_track,
)
from elysium.processing.tokenizer_training import train_tokenizer

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)


def test_video_prompt_is_the_released_format(processor):
    text = processor.build_prompt("sot", 3, box=[0.234, 0.451, 0.458, 0.7249])
    assert text == (
        SYSTEM + " USER: Frame 1: <image>, Frame 2: <image>, Frame 3: <image>\n"
        "This is a video showing an object with coordinates [23,45,46,72] in Frame 1. "
        "Please provide the detailed coordinates of the object in each frame. ASSISTANT:"
    )
    rsot = processor.build_prompt("rsot", 2, expression="the red circle")
    assert rsot.endswith(
        "Frame 2: <image>\nPlease find the red circle in the initial frame and provide the detailed coordinates "
        "in each frame. ASSISTANT:"
    )


def test_single_image_has_no_timestamp_and_answers_end_with_eos(processor):
    text = processor.build_prompt("rec", 1, expression="the dog", answer="[1,2,30,40]")
    assert text.startswith(SYSTEM + " USER: <image>\nPlease provide the bounding box")
    assert text.endswith(" ASSISTANT: [1,2,30,40]</s>")
    ids = processor(text=text, images=[np.zeros((9, 9, 3), np.uint8)])["input_ids"][0]
    assert ids[-1].item() == processor.tokenizer.eos_token_id
    assert ids[0].item() == processor.tokenizer.bos_token_id


def test_each_frame_expands_to_the_t_selector_count(processor):
    text = processor.build_prompt("sot", 3, box=[0.1, 0.1, 0.5, 0.5])
    inputs = processor(text=text, images=[PIL.Image.new("RGB", (64, 48))] * 3)
    image_id = processor.image_token_id
    assert (inputs["input_ids"] == image_id).sum().item() == 3 * processor.num_image_tokens
    assert inputs["pixel_values"].shape == (3, 3, 28, 28)


def test_box_is_13_tokens_with_digits_split(processor):
    ids = processor.tokenizer(" [23,45,46,72]", add_special_tokens=False)["input_ids"]
    assert len(ids) == 13


def test_pixels_are_clip_normalized(processor):
    white = np.full((28, 28, 3), 255, np.uint8)
    pixels = processor.image_processor([white])["pixel_values"]
    expected = (1.0 - torch.tensor(processor.image_processor.image_mean)) / torch.tensor(
        processor.image_processor.image_std
    )
    torch.testing.assert_close(pixels[0, :, 0, 0], expected)


def test_box_codec_round_trip():
    assert format_box([0.0, 0.5, 0.999, 1.0]) == "[0,50,99,99]"
    assert (
        format_track([[0.1, 0.2, 0.3, 0.4], [0.2, 0.3, 0.4, 0.5]]) == "Frame 1: [10,20,30,40], Frame 2: [20,30,40,50]."
    )
    parsed = parse_track("Frame 1: [10,20,30,40], Frame 2: [20,30,40,50].", 2)
    assert parsed.boxes == [[0.1, 0.2, 0.3, 0.4], [0.2, 0.3, 0.4, 0.5]] and parsed.num_repaired == 0


def test_malformed_output_is_repaired_and_counted(processor):
    text = "Frame 1: [10,20,30,40], Frame 2: [50,20,30,40], Frame 4: [1,2,3], Frame 9: [1,2,3,4]"
    (result,) = processor.post_process_tracking([text], (200, 100), num_frames=4)
    assert result["boxes"] == [[20.0, 20.0, 60.0, 40.0]] * 4  # x2<x1 in frame 2, missing 3, short 4: carried
    assert result["repaired"] == [False, True, True, True]
    assert result["num_repaired"] == 3 and result["extra"] == 1
    (seeded,) = processor.post_process_tracking("no boxes at all", (200, 100), 2, initial_boxes=[[2, 4, 6, 8]])
    assert seeded["boxes"] == [[2.0, 4.0, 6.0, 8.0]] * 2 and seeded["num_repaired"] == 2


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("Frame 0123456789:[],.-x\n")), max_size=120), n=st.integers(1, 9))
def test_parse_never_raises(text, n):
    parsed = parse_track(text, n, initial_box=[0.1, 0.1, 0.2, 0.2])
    assert len(parsed.boxes) == n and all(len(b) == 4 for b in parsed.boxes)
    assert all(0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1 for b in parsed.boxes)


@pytest.mark.parametrize(
    "box, size, message",
    [
        ([10, 10, 5, 20], (100, 100), "x2<=x1"),
        ([10, 10, 50, 200], (100, 100), "outside the frame"),
        ([1, 2, 3], (100, 100), "has 3 values"),
        (["a", 1, 2, 3], (100, 100), "not four numbers"),
    ],
)
def test_bad_boxes_are_named(box, size, message):
    with pytest.raises(BoxError, match=message):
        check_box(box, size)


def test_bad_prompt_inputs_fail_clearly(processor):
    with pytest.raises(BoxError, match="x2<=x1"):
        processor.build_prompt("sot", 2, box=[0.5, 0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="non-empty expression"):
        processor.build_prompt("rsot", 2, expression="  ")
    text = processor.build_prompt("sot", 2, box=[0.1, 0.1, 0.5, 0.5])
    with pytest.raises(ValueError, match="2 <image> placeholders .* but 3 frames"):
        processor(text=text, images=[np.zeros((8, 8, 3), np.uint8)] * 3)
    with pytest.raises(ValueError, match="but 0 frames"):
        processor(text=text, images=[])
    with pytest.raises(ValueError, match="No frames"):
        processor.image_processor([])


def test_bad_frames_fail_clearly(processor):
    text = processor.build_prompt("sot", 1, box=[0.1, 0.1, 0.5, 0.5])
    with pytest.raises(ValueError, match="Frame 0 has shape \\(8, 8\\); frames must be RGB"):
        processor(text=text, images=[np.zeros((8, 8), np.uint8)])
    with pytest.raises(ValueError, match="Frame 0 has shape \\(8, 8, 4\\)"):
        processor(text=text, images=[np.zeros((8, 8, 4), np.uint8)])
    with pytest.raises(ValueError, match="Frame 0 is empty"):
        processor(text=text, images=[np.zeros((0, 8, 3), np.uint8)])
    gray = PIL.Image.new("L", (10, 10))  # PIL modes are converted, as CLIP's processor does
    assert processor(text=text, images=[gray])["pixel_values"].shape == (1, 3, 28, 28)


def test_too_many_frames_for_the_context_fail_in_the_processor(processor):
    processor.tokenizer.model_max_length = 100
    try:
        text = processor.build_prompt("sot", 8, box=[0.1, 0.1, 0.5, 0.5])
        with pytest.raises(ValueError, match="Give fewer frames"):
            processor(text=text, images=[np.zeros((8, 8, 3), np.uint8)] * 8)
    finally:
        processor.tokenizer.model_max_length = int(1e30)


def test_processor_round_trip_with_auto_processor(tmp_path, processor):
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, ElysiumProcessor) and loaded.num_image_tokens == processor.num_image_tokens
    text = processor.build_prompt("video_reg", 2, box=[0.1, 0.2, 0.3, 0.4])
    images = [np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)] * 2
    a, b = processor(text=text, images=images), loaded(text=text, images=images)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    assert loaded.build_prompt("video_reg", 2, box=[0.1, 0.2, 0.3, 0.4]) == text


def test_a_chosen_system_prompt_is_saved_with_the_processor(tmp_path, processor):
    processor.chat_template = chat_template("")
    text = processor.build_prompt("rec", 1, expression="the dog", answer="[1,2,30,40]")
    assert text.startswith("USER: <image>\nPlease provide the bounding box") and SYSTEM not in text
    processor.chat_template = chat_template("Boxes are [x1,y1,x2,y2] in 0-100; it's short.")
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    again = loaded.build_prompt("sot", 2, box=[0.1, 0.2, 0.3, 0.4])
    assert again.startswith("Boxes are [x1,y1,x2,y2] in 0-100; it's short. USER: Frame 1: <image>, Frame 2:")
    assert chat_template() == ElysiumProcessor(processor.image_processor, processor.tokenizer).chat_template


def test_from_vision_text_pretrained(tmp_path):
    """A fresh Elysium from a CLIP vision tower and a Llama LLM saved locally: parts loaded, <image> added."""
    torch.manual_seed(0)
    vision = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        )
    )
    vision.save_pretrained(tmp_path / "clip")
    llm_tokenizer = train_tokenizer(["Frame 1: [1,2,3,4]. the red circle USER: ASSISTANT:"] * 5, vocab_size=200)
    llm = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=len(llm_tokenizer),
            max_position_embeddings=512,
        )
    )
    llm.save_pretrained(tmp_path / "llm")
    llm_tokenizer.save_pretrained(tmp_path / "llm")

    model = ElysiumForConditionalGeneration.from_vision_text_pretrained(
        str(tmp_path / "clip"), str(tmp_path / "llm"), t_selector_tokens=3
    )
    processor = ElysiumProcessor.from_vision_text_pretrained(
        str(tmp_path / "clip"), str(tmp_path / "llm"), t_selector_tokens=3
    )
    assert model.config.image_token_id == processor.image_token_id == len(llm_tokenizer)
    assert model.get_input_embeddings().num_embeddings == len(llm_tokenizer) + 1
    torch.testing.assert_close(
        model.model.language_model.layers[0].self_attn.q_proj.weight, llm.model.layers[0].self_attn.q_proj.weight
    )
    torch.testing.assert_close(
        model.model.vision_tower.encoder.layers[1].mlp.fc1.weight, vision.encoder.layers[1].mlp.fc1.weight
    )
    text = processor.build_prompt("sot", 2, box=[0.1, 0.1, 0.5, 0.5])
    inputs = processor(text=text, images=[np.zeros((20, 20, 3), np.uint8)] * 2)
    assert model(**inputs).logits.shape[-1] == len(llm_tokenizer) + 1


def test_a_broken_box_does_not_swallow_the_next_frame():
    parsed = parse_track("Frame 1: [1,2,3,4], Frame 3: [7,20,oops, Frame 5: [9,20,29,40]", 5)
    assert parsed.repaired == [False, True, True, True, False]
    assert parsed.boxes[4] == [0.09, 0.2, 0.29, 0.4] and parsed.boxes[2] == [0.01, 0.02, 0.03, 0.04]
