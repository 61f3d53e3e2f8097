"""Sample building: clip sampling, answer-only labels, task and source mixing, bad images replaced by redraws."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from elysium.processing.boxes import format_track
from elysium.synthetic import SynthConfig, synthesize
from elysium.training.config import DataArgs
from elysium.training.dataset_builder import (
    box_jitter,
    build_train_dataset,
    context_range,
    grounding_specs,
    place_range,
)
from elysium.training.frames import FrameStore
from elysium.training.mixture import GroundingSource, MixtureDataset, TrackSource, VideoQASource
from elysium.training.records import UNREADABLE, SkipCounts, load_track_records, usable_track_records
from elysium.training.samples import SampleBuilder, clip_indices, jittered_box
from elysium.training.sft import prepare_synthetic


def test_clip_indices_respect_length_stride_and_video():
    rng = random.Random(0)
    seen_counts, seen_strides = set(), set()
    for _ in range(2000):
        length = rng.randint(1, 200)
        indices = clip_indices(length, rng)
        assert 1 <= len(indices) <= 8 and indices[-1] < length and indices[0] >= 0
        assert len(set(indices)) == len(indices) and (len(indices) >= 2 or length == 1)
        strides = {b - a for a, b in zip(indices, indices[1:])}
        assert len(strides) <= 1 and all(1 <= s <= 60 for s in strides)
        seen_counts.add(len(indices))
        seen_strides |= strides
    assert seen_counts >= set(range(2, 9)) and max(seen_strides) > 30


def _record(n: int = 50) -> dict:
    return {
        "frames": [f"v/{i:06d}.jpg" for i in range(n)],
        "box": [[i / 100, 0.1, i / 100 + 0.2, 0.5] for i in range(n)],  # box i encodes its frame index
        "object_description": "the red square on the white background",
    }


def test_track_examples_take_boxes_at_the_frame_indices_and_mix_tasks(processor):
    builder = SampleBuilder(processor, task_weights={"sot": 2.0, "rsot": 1.0, "video_reg": 1.0})
    rng, tasks = random.Random(1), Counter()
    for _ in range(400):
        example = builder.track_example(_record(), rng)
        tasks[example.task] += 1
        indices = [int(p.split("/")[1][:6]) for p in example.frames]
        boxes = [_record()["box"][i] for i in indices]
        if example.task in ("sot", "rsot"):
            assert example.answers == [format_track(boxes)]
        else:
            assert example.answers == ["the red square on the white background"]
        if example.task != "rsot":
            assert f"[{round(100 * boxes[0][0])},10," in example.text  # the prompt box is the clip's first
    assert 150 < tasks["sot"] < 250 and tasks["rsot"] > 60 and tasks["video_reg"] > 60
    only_reg = SampleBuilder(processor, task_weights={"video_reg": 1.0})
    assert {only_reg.track_example(_record(), rng).task for _ in range(20)} == {"video_reg"}


def test_rsot_asks_with_the_expression_when_the_record_has_one(processor):
    builder = SampleBuilder(processor)
    rng = random.Random(3)
    with_expression = {**_record(), "expression": "the red one on the left"}
    examples = [builder.track_example(with_expression, rng) for _ in range(60)]
    rsot = [e for e in examples if e.task == "rsot"]
    assert rsot and all("the red one on the left" in e.text and "white background" not in e.text for e in rsot)
    # The expression was written for the first frame ("on the left" may not hold later): RSOT clips start there.
    assert all(e.frames[0] == with_expression["frames"][0] for e in rsot)
    others = [e for e in examples if e.task != "rsot"]
    assert any(e.frames[0] != with_expression["frames"][0] for e in others)
    reg = [e for e in examples if e.task == "video_reg"]  # Video-REG still answers with the description
    assert reg and all(e.answers == ["the red square on the white background"] for e in reg)
    for record in (_record(), {**_record(), "expression": "  "}):  # ElysiumTrack-1M: the description names it
        rsot = [e for e in (builder.track_example(record, rng) for _ in range(30)) if e.task == "rsot"]
        assert rsot and all("the red square on the white background" in e.text for e in rsot)


def test_labels_cover_only_the_answer_and_its_end_token(processor):
    builder = SampleBuilder(processor)
    rng = random.Random(2)
    for _ in range(10):
        example = builder.track_example(_record(), rng)
        sample = builder.encode(example, [PIL.Image.new("RGB", (20, 20))] * len(example.frames))
        ids, labels = sample["input_ids"], sample["labels"]
        learned = ids[labels != -100]
        assert processor.tokenizer.decode(learned) == example.answers[0] + "</s>"
        assert learned[-1] == processor.tokenizer.eos_token_id
        first = int((labels != -100).nonzero()[0])
        assert (labels[first:] != -100).all()  # one contiguous answer at the end
        assert (ids == processor.image_token_id).sum() == len(example.frames) * processor.num_image_tokens
        assert (labels[ids == processor.image_token_id] == -100).all()
        assert sample["pixel_values"].shape[0] == len(example.frames)


def test_training_ids_keep_user_text_as_text(processor):
    """An expression holding `<image>` or `</s>` trains on the ids `processor.tokenize` gives (the string as text),
    with the image slots and the one answer end of the prompt alone."""
    builder = SampleBuilder(processor, task_weights={"rsot": 1.0})
    record = {**_record(), "expression": "the <image> red </s> one"}
    example = builder.track_example(record, random.Random(5))
    sample = builder.encode(example, [PIL.Image.new("RGB", (20, 20))] * len(example.frames))
    ids, labels = sample["input_ids"], sample["labels"]
    assert ids.tolist() == processor.tokenize(example.text)["input_ids"][0].tolist()
    assert (ids == processor.image_token_id).sum() == len(example.frames) * processor.num_image_tokens
    assert (ids == processor.tokenizer.eos_token_id).sum() == 1
    assert processor.tokenizer.decode(ids[labels != -100]) == example.answers[0] + "</s>"


def synth_videos(out_dir: Path, videos: int, frames: int) -> list[dict]:
    """Small synthetic videos, one track each, under `out_dir` (frames named from it); returns the records."""
    config = SynthConfig(tracks_per_video=1, min_track_frames=2, photos=False)
    summary = synthesize(out_dir, videos, 0, (frames, frames), (64, 48), config=config, progress=False)
    return [json.loads(line) for line in summary.annotations.read_text().splitlines()]


@pytest.fixture()
def mixed_sources(tmp_path: Path, processor):
    records = synth_videos(tmp_path, videos=3, frames=10)
    broken = records[2]["frames"][len(records[2]["frames"]) // 2]
    (tmp_path / broken).write_bytes(b"not a jpeg")  # unreadable on decode
    counts = SkipCounts()
    track = TrackSource(
        usable_track_records(load_track_records(str(tmp_path / "annotations.jsonl"), str(tmp_path)), counts),
        FrameStore.from_path(tmp_path),
    )
    PIL.Image.new("RGB", (40, 30), "blue").save(tmp_path / "coco.jpg")
    grounding = GroundingSource(
        [{"image": "coco.jpg", "box": [0.1, 0.2, 0.5, 0.9], "expression": "the blue wall"}], tmp_path
    )
    qa = VideoQASource(
        [
            {
                "frames": records[0]["frames"],
                "conversations": [
                    {"from": "human", "value": "<video>\nWhat moves?"},
                    {"from": "gpt", "value": "A square."},
                    {"from": "human", "value": "Which color?"},
                    {"from": "gpt", "value": "Red."},
                ],
            }
        ],
        FrameStore.from_path(tmp_path),
    )
    return track, grounding, qa


def test_mixture_follows_weights_is_deterministic_and_survives_bad_images(processor, mixed_sources):
    builder = SampleBuilder(processor, max_frames=4)
    runtime = SkipCounts()
    mixture = MixtureDataset(list(mixed_sources), builder, length=60, weights=[4, 1, 1], seed=7, counts=runtime)
    samples = [mixture[i] for i in range(60)]
    tasks = Counter(s["task"] for s in samples)
    assert tasks["sot"] + tasks["rsot"] + tasks["video_reg"] > tasks["rec"] + tasks["reg"] + tasks["video_qa"]
    assert tasks["rec"] + tasks["reg"] > 0 and tasks["video_qa"] > 0
    assert runtime.as_dict().get(UNREADABLE, 0) > 0  # the third video's clips that hit the broken frame were redrawn

    qa = next(s for s in samples if s["task"] == "video_qa")
    learned = processor.tokenizer.decode(qa["input_ids"][qa["labels"] != -100])
    assert learned == "A square.</s>Red.</s>" and qa["pixel_values"].shape[0] == 4

    again = MixtureDataset(list(mixed_sources), builder, length=60, weights=[4, 1, 1], seed=7)
    assert all((again[i]["input_ids"] == samples[i]["input_ids"]).all() for i in (0, 17, 59))
    again.set_epoch(1)
    assert any(
        again[i]["input_ids"].shape != samples[i]["input_ids"].shape
        or (again[i]["input_ids"] != samples[i]["input_ids"]).any()
        for i in range(10)
    )

    hf = mixture.as_hf_dataset()
    assert len(hf) == 60 and (hf[17]["input_ids"] == samples[17]["input_ids"]).all()


def test_grounding_sources_are_named_weighed_apart_and_join_the_generated_one(processor, tmp_path):
    for name, color in (("square", "white"), ("wall", "blue")):
        PIL.Image.new("RGB", (40, 30), color).save(tmp_path / f"{name}.png")
        record = {"image": f"{name}.png", "box": [0.1, 0.2, 0.5, 0.9], "expression": f"the {name}"}
        (tmp_path / f"{name}s.jsonl").write_text(json.dumps(record) + "\n")
    squares = {"file": str(tmp_path / "squares.jsonl"), "image_root": str(tmp_path), "name": "squares"}
    walls = {"file": str(tmp_path / "walls.jsonl"), "image_root": str(tmp_path), "name": "walls"}
    data_cfg = {"grounding": [squares, walls], "weights": {"squares": 3.0, "walls": 1.0}, "samples_per_epoch": 200}
    dataset = build_train_dataset(DataArgs(**data_cfg), processor, 0, SkipCounts(), SkipCounts())
    texts = [processor.tokenizer.decode(dataset[i]["input_ids"]) for i in range(len(dataset))]
    assert all(("square" in text) != ("wall" in text) for text in texts)
    assert 130 <= sum("square" in text for text in texts) <= 170  # 3 : 1

    with pytest.raises(ValueError, match="own `name`"):  # two sources called `grounding`
        grounding_specs(DataArgs(grounding=[dict(squares, name="grounding"), {"file": walls["file"]}]))
    with pytest.raises(ValueError, match="file, image_root"):
        grounding_specs(DataArgs(grounding=["squares.jsonl"]))

    # data.synthetic's grounding images join the sources the config names, once however often it is prepared
    generated = tmp_path / "generated"
    data_cfg = {
        "grounding": squares,
        "synthetic": {
            "out_dir": str(generated),
            "videos": 2,
            "frames_per_video": [8, 8],
            "size": [64, 48],
            "sources": ["grounding"],
            "photos": False,
        },
    }
    data = prepare_synthetic(prepare_synthetic(DataArgs(**data_cfg)))
    assert [spec.get("name") for spec in data.grounding] == ["squares", "grounding"]
    assert data.grounding[1]["file"] == str(generated / "grounding.jsonl")


def test_streaming_records_feed_the_sample_builder(processor, tmp_path):
    from elysium.training.mixture import StreamingTrackDataset

    records = synth_videos(tmp_path, videos=3, frames=8)
    stream = usable_track_records(
        load_track_records(str(tmp_path / "annotations.jsonl"), str(tmp_path), streaming=True), SkipCounts()
    )
    samples = list(StreamingTrackDataset(stream, FrameStore.from_path(tmp_path), SampleBuilder(processor)))
    assert len(samples) == len(records) == 3 and all((s["labels"] != -100).any() for s in samples)


def test_grounding_crops_hold_the_target_where_the_text_says(processor, tmp_path):
    image = PIL.Image.new("RGB", (160, 120), (128, 128, 128))
    image.paste((255, 0, 0), (100, 30, 116, 50))  # a 16 x 20 px red target
    image.save(tmp_path / "a.png")
    record = {"image": "a.png", "box": [100 / 160, 30 / 120, 116 / 160, 50 / 120], "expression": "the red square"}
    source = GroundingSource([record], tmp_path)
    builder = SampleBuilder(processor, grounding_context=(1.5, 2.5))
    sides = []
    for seed in range(30):
        example = source.example(0, builder, random.Random(seed))
        [crop] = source.load_frames(example)
        pixels = np.asarray(crop)
        red = np.argwhere((pixels[..., 0] > 200) & (pixels[..., 1] < 50))
        assert len(red) == 16 * 20  # the whole target, uncut
        said = [int(v) for v in re.search(r"\[(\d+),(\d+),(\d+),(\d+)\]", example.text).groups()]
        width, height = crop.size
        seen = [red[:, 1].min() / width, red[:, 0].min() / height, (red[:, 1].max() + 1) / width]
        seen.append((red[:, 0].max() + 1) / height)
        assert np.allclose([v / 100 for v in said], seen, atol=0.02), (said, seen)
        sides.append(max(width, height) / 20)
    assert 1.45 <= min(sides) and max(sides) <= 2.55 and max(sides) - min(sides) > 0.5  # context drawn per sample
    whole = source.example(0, SampleBuilder(processor), random.Random(0))
    assert whole.crop is None and source.load_frames(whole)[0].size == (160, 120)


def test_track_crops_follow_the_first_box_and_say_where_the_target_is(processor, tmp_path):
    """SOT / Video-REG clips are cropped to one square around the first box; every answer box is where the target
    is in that crop (cut at its edge once it moves out); RSOT clips stay whole."""
    frames, boxes = [], []
    for i in range(12):  # a 16 x 16 red target moving right 6 px a frame over a grey 160 x 120 frame
        image = PIL.Image.new("RGB", (160, 120), (128, 128, 128))
        x = 40 + 6 * i
        image.paste((255, 0, 0), (x, 50, x + 16, 66))
        image.save(tmp_path / f"{i:06d}.png")
        frames.append(f"{i:06d}.png")
        boxes.append([x / 160, 50 / 120, (x + 16) / 160, 66 / 120])
    record = {"frames": frames, "box": boxes, "frame_size": [160, 120], "object_description": "a red square"}
    source = TrackSource([record], FrameStore.from_path(tmp_path))
    builder = SampleBuilder(processor, task_weights={"sot": 1.0, "rsot": 1.0}, max_stride=1, track_context=(2.0, 4.0))
    seen_tasks, cut = Counter(), 0
    for seed in range(40):
        example = source.example(0, builder, random.Random(seed))
        seen_tasks[example.task] += 1
        images = source.load_frames(example)
        if example.task == "rsot":
            assert example.crop is None and {im.size for im in images} == {(160, 120)}
            continue
        assert len({im.size for im in images}) == 1 and images[0].size != (160, 120)
        width, height = images[0].size
        said = [[int(v) / 100 for v in m] for m in re.findall(r"\[(\d+),(\d+),(\d+),(\d+)\]", example.answers[0])]
        assert len(said) == len(images)
        for number, (image, box) in enumerate(zip(images, said)):
            red = np.argwhere((np.asarray(image)[..., 0] > 200) & (np.asarray(image)[..., 1] < 50))
            if number == 0:
                assert len(red) == 16 * 16  # the first box is whole in the crop
            if len(red) == 0:  # moved out of the crop: answered at its right edge
                assert box[0] >= 0.98 and box[2] >= 0.98
                cut += 1
                continue
            seen = [red[:, 1].min() / width, red[:, 0].min() / height]
            seen += [(red[:, 1].max() + 1) / width, (red[:, 0].max() + 1) / height]
            assert np.allclose(box, seen, atol=0.02), (seed, number, box, seen)
    assert seen_tasks["sot"] > 5 and seen_tasks["rsot"] > 5 and cut > 0


def test_track_crops_read_the_frame_size_when_the_record_has_none(processor, tmp_path):
    PIL.Image.new("RGB", (90, 60), (128, 128, 128)).save(tmp_path / "0.png")
    PIL.Image.new("RGB", (90, 60), (128, 128, 128)).save(tmp_path / "1.png")
    record = {"frames": ["0.png", "1.png"], "box": [[0.4, 0.4, 0.5, 0.5]] * 2, "object_description": "a thing"}
    source = TrackSource([record], FrameStore.from_path(tmp_path))
    builder = SampleBuilder(processor, task_weights={"sot": 1.0}, track_context=(3.0, 3.0))
    example = source.example(0, builder, random.Random(0))
    assert source.load_frames(example)[0].size == (27, 27)  # 3 x the longer side of a 9 x 6 px box


@pytest.mark.parametrize("key", ["grounding_context", "track_context"])
@pytest.mark.parametrize("value", [[0.5, 2.0], [2.0, 1.5], ["a", 2], 3])
def test_bad_crop_context_is_named(key, value):
    with pytest.raises(ValueError, match=key):
        context_range(DataArgs(**{key: value}), key)
    assert context_range(DataArgs(), key) is None and context_range(DataArgs(**{key: [1, 2]}), key) == (1.0, 2.0)


def _still_object(tmp_path: Path) -> tuple[dict, TrackSource]:
    """A two-frame record of one object that stays at [0.4, 0.4, 0.5, 0.5] of a 160x120 grey frame, and its source."""
    for i in range(2):
        PIL.Image.new("RGB", (160, 120), (128, 128, 128)).save(tmp_path / f"{i}.png")
    record = {
        "frames": ["0.png", "1.png"],
        "box": [[0.4, 0.4, 0.5, 0.5]] * 2,
        "frame_size": [160, 120],
        "object_description": "a thing",
    }
    return record, TrackSource([record], FrameStore.from_path(tmp_path))


def test_track_place_centres_the_first_box_in_its_crop(processor, tmp_path):
    """`track_place: [0.5, 0.5]` puts the first box in the middle of its crop (as a tracker centres each clip on
    its last box); the default range puts it anywhere, off-centre by up to the crop's free room."""
    record, source = _still_object(tmp_path)

    def first_box_centres(place):
        builder = SampleBuilder(processor, task_weights={"sot": 1.0}, track_context=(3.0, 3.0), track_place=place)
        centres = []
        for seed in range(20):
            example = source.example(0, builder, random.Random(seed))
            x1, y1, x2, y2 = (int(v) / 100 for v in re.search(r"\[(\d+),(\d+),(\d+),(\d+)\]", example.text).groups())
            centres.append(((x1 + x2) / 2, (y1 + y2) / 2))
        return np.array(centres)

    centred = first_box_centres((0.5, 0.5))
    assert np.allclose(centred, 0.5, atol=0.011)
    anywhere = first_box_centres((0.0, 1.0))
    assert anywhere.min() < 0.3 and anywhere.max() > 0.7


@pytest.mark.parametrize("value", [[-0.1, 0.5], [0.7, 0.3], [0.2, 1.5], ["a", 1], 0.5])
def test_bad_track_place_is_named(value):
    with pytest.raises(ValueError, match="track_place"):
        place_range(DataArgs(track_place=value))
    assert place_range(DataArgs()) == (0.0, 1.0) and place_range(DataArgs(track_place=[0.4, 0.6])) == (0.4, 0.6)


def _prompt_and_answer_boxes(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The box an SOT training text gives in its question and the first box of its answer (normalized)."""
    boxes = [[int(v) / 100 for v in m] for m in re.findall(r"\[(\d+),(\d+),(\d+),(\d+)\]", text)]
    return np.array(boxes[0]), np.array(boxes[1])


def test_track_box_jitter_gives_a_rough_box_and_asks_for_the_true_one(processor, tmp_path):
    """With `track_box_jitter` the prompt's box is off the object and the crop centred on it (as a tracker crops
    around its last guess); the answer's first box is still the object's. Without it the two are the same box."""
    record, source = _still_object(tmp_path)

    def pairs(jitter):
        builder = SampleBuilder(
            processor,
            task_weights={"sot": 1.0},
            track_context=(3.0, 3.0),
            track_place=(0.5, 0.5),
            track_box_jitter=jitter,
        )
        examples = [source.example(0, builder, random.Random(seed)) for seed in range(30)]
        return [(*_prompt_and_answer_boxes(e.text), np.array(e.crop)) for e in examples]

    exact = pairs(0.0)
    assert all(np.array_equal(given, first) for given, first, _ in exact)
    rough = pairs(0.25)
    offsets = np.array([np.abs((g[:2] + g[2:]) / 2 - (f[:2] + f[2:]) / 2).max() for g, f, _ in rough])
    assert np.mean(offsets > 0.02) > 0.7  # the object is off the given box's centre in most samples
    assert all(np.allclose((g[:2] + g[2:]) / 2, 0.5, atol=0.011) for g, _, _ in rough)  # the crop centres the guess
    for _, first, crop in rough:  # the answer is the object's true box, in the crop
        in_frame = np.tile(crop[:2], 2) + first * np.tile(crop[2:] - crop[:2], 2)
        assert np.allclose(in_frame, record["box"][0], atol=0.01 * (crop[2] - crop[0]) + 1e-6)
    again = pairs(0.25)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(rough, again))  # drawn from the sample's seeded RNG


def test_jittered_box_moves_by_its_size_and_stays_in_the_frame():
    rng = random.Random(0)
    box = [0.4, 0.4, 0.5, 0.6]
    draws = np.array([jittered_box(box, 0.2, rng) for _ in range(4000)])
    centres, sizes = (draws[:, :2] + draws[:, 2:]) / 2, draws[:, 2:] - draws[:, :2]
    assert np.allclose(centres.mean(0), [0.45, 0.5], atol=0.005)
    assert np.allclose(centres.std(0), [0.2 * 0.1, 0.2 * 0.2], rtol=0.1)  # a fifth of the width / the height
    assert np.allclose(np.log(sizes / [0.1, 0.2]).std(0), 0.1, rtol=0.1)
    edge = np.array([jittered_box([0.0, 0.0, 0.3, 0.3], 0.5, rng) for _ in range(500)])
    assert edge.min() >= 0.0 and edge.max() <= 1.0
    assert jittered_box(box, 0.0, rng) == pytest.approx(box)


@pytest.mark.parametrize("value", [-0.1, 1.5, "a", [0.1, 0.2]])
def test_bad_track_box_jitter_is_named(value):
    with pytest.raises(ValueError, match="track_box_jitter"):
        box_jitter(DataArgs(track_box_jitter=value))
    assert box_jitter(DataArgs()) == 0.0 and box_jitter(DataArgs(track_box_jitter=0.2)) == 0.2
