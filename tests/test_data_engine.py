"""The ElysiumTrack data engine (`elysium data build`, data_engine/): its filters against known truth, spaCy chunk
filtering on hand-built Docs, resuming after a kill, and the real transformers detector and tracker classes.

Nothing downloads: truth comes from `elysium data synth`; the detector and tracker are stand-ins that replay it
(data_engine/replay.py) or tiny random OWLv2 and SAM 2 video models built here from small configs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from elysium.cli import main as elysium_main
from elysium.data_engine.chunks import ABSTRACT, PLURAL, PRONOUN, doc_chunks, load_spacy
from elysium.data_engine.engine import BuildConfig, build, merge, read_inputs, shard_path
from elysium.data_engine.filters import (
    DISAGREE_LAST,
    DRIFT,
    KALMAN_GATE_999,
    LOW_CONFIDENCE,
    FunnelThresholds,
    kalman_nis,
)
from elysium.data_engine.replay import ReplayDetector, ReplayTracker, _leading_noun_phrase, replay_captions
from elysium.synthetic import SynthConfig, synthesize
from elysium.training.records import load_track_records

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "assets" / "demo.mp4"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synthesize(
        out, 8, seed=3, frames_per_video=(12, 16), size=(96, 72), config=SynthConfig(photos=False), progress=False
    )
    replay_captions(out)
    return out


def _truth(synth_dir):
    return [json.loads(line) for line in (synth_dir / "annotations.jsonl").read_text().splitlines()]


def _expected(synth_dir):
    """Tracks the detector finds (in view on the first, middle and last frames) and those a perfect engine keeps:
    in view on every frame (the replay tracker gives confidence 0 where the object is out of view, as a real one
    loses it)."""
    records = _truth(synth_dir)
    n = {r["vid"]: r["metadata"]["num_frames"] for r in records}
    found = [r for r in records if {0, n[r["vid"]] // 2, n[r["vid"]] - 1} <= set(r["metadata"]["frame_indices"])]
    return found, [r for r in found if len(r["frames"]) == n[r["vid"]]]


def _build(synth_dir, out, *, drift=0.0, kind="slide", tracker=None, shard_size=3, preview=0):
    rows = read_inputs(synth_dir / "captions.jsonl", synth_dir / "frames")
    annotations = synth_dir / "annotations.jsonl"
    detector = ReplayDetector(annotations, noise=0.02)
    tracker = tracker or ReplayTracker(annotations, noise=0.01, drift_fraction=drift, drift=kind)
    config = BuildConfig(out=out, shard_size=shard_size, batch_videos=2, preview=preview, progress=False)
    return build(rows, None, detector, tracker, config), tracker


def test_clean_tracks_are_kept_and_lost_ones_dropped_by_the_confidence_filter(synth, tmp_path):
    found, visible = _expected(synth)
    summary, _ = _build(synth, tmp_path / "out", preview=2)
    funnel, dropped = summary["funnel"], summary["dropped"]
    assert funnel["videos"] == funnel["videos_read"] == 8
    assert funnel["chunks_found"] == funnel["chunks_kept"] == len(_truth(synth))
    assert funnel["pairs_above_detector_threshold"] == funnel["trajectories_tracked"] == len(found)
    assert dropped["pairs"] == {"detector_score_below_threshold": len(_truth(synth)) - len(found)}
    assert funnel["trajectories_written"] == len(visible) > 0
    # every track that leaves the view has confidence 0 there: dropped as low-confidence, nothing else
    assert dropped["trajectories"][LOW_CONFIDENCE] == funnel["trajectories_tracked"] - len(visible)
    assert dropped["trajectories"][DRIFT] == dropped["trajectories"][DISAGREE_LAST] == 0
    written = [json.loads(line) for line in (tmp_path / "out" / "annotations.jsonl").read_text().splitlines()]
    truth = {(r["vid"], _leading_noun_phrase(r["object_description"], r["object_class"])): r for r in visible}
    for record in written:  # the boxes are the true ones, within the replay noise
        true = np.array(truth[(record["vid"], record["object_class"])]["box"])
        assert np.abs(np.array(record["box"]) - true).max() < 0.08
    # the output is what the trainer reads: `elysium data check` finds every record usable, frames on disk
    dataset = load_track_records(tmp_path / "out" / "annotations.jsonl", frames_root=tmp_path / "out")
    assert len(dataset) == len(written) and set(dataset["_problem"]) == {""}
    assert (
        elysium_main(
            [
                "data",
                "check",
                str(tmp_path / "out" / "annotations.jsonl"),
                "--frames-root",
                str(tmp_path / "out"),
                "--decode",
            ]
        )
        == 0
    )
    import datasets

    parquet = datasets.Dataset.from_parquet(summary["outputs"]["parquet"])
    assert parquet["id"] == [r["id"] for r in written] and parquet[0]["metadata"]["detector_scores"]
    assert sorted(p.name for p in (tmp_path / "out" / "preview").iterdir()) == [
        f"synth-s3-00000{i}.mp4" for i in range(2)
    ]


def test_sliding_tracks_are_dropped_by_the_iou_filter_and_jumping_ones_by_the_kalman_filter(synth, tmp_path):
    _, visible = _expected(synth)
    slide, _ = _build(synth, tmp_path / "slide", drift=1.0, kind="slide")
    assert slide["funnel"]["kept_kalman_drift"] == slide["funnel"]["kept_tracker_confidence"] == len(visible)
    assert slide["dropped"]["trajectories"][DISAGREE_LAST] == len(visible)
    assert slide["funnel"]["trajectories_written"] == 0
    jump, _ = _build(synth, tmp_path / "jump", drift=1.0, kind="jump")
    assert jump["dropped"]["trajectories"][DRIFT] == len(visible)
    assert jump["funnel"]["trajectories_written"] == 0
    half, tracker = _build(synth, tmp_path / "half", drift=0.5, kind="jump")
    kept_clean = sum(1 for r in visible if tracker.drifted[(r["vid"], r["metadata"]["object_index"])] == "none")
    assert 0 < kept_clean < len(visible) and half["funnel"]["trajectories_written"] == kept_clean


def test_kalman_gate_separates_true_tracks_from_jumps(synth):
    rng = np.random.default_rng(0)
    for record in _truth(synth):
        if len(record["frames"]) != record["metadata"]["num_frames"]:
            continue
        w, h = record["frame_size"]
        boxes = np.array(record["box"]) * [w, h, w, h]
        size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        noisy = boxes + rng.normal(0, 0.01, boxes.shape) * size
        assert kalman_nis(noisy).max() < KALMAN_GATE_999, record["id"]
        jumped = noisy.copy()
        jumped[len(jumped) // 2 :] += [w / 2, h / 2, w / 2, h / 2]
        assert kalman_nis(jumped).max() > KALMAN_GATE_999, record["id"]


def test_defaults_are_the_papers_thresholds_and_show_in_help(capsys):
    assert FunnelThresholds() == FunnelThresholds(0.6, 0.8, 0.3, KALMAN_GATE_999)
    with pytest.raises(SystemExit):
        elysium_main(["data", "build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, value in (("--detector-threshold", "0.6"), ("--tracker-threshold", "0.8"), ("--iou-threshold", "0.3")):
        assert flag in text and f"(default {value}, the paper's)" in text


# ----------------------------------------------------------------------------------------------------------------
# spaCy chunks on hand-built Docs (no model)


def _doc(words, pos, tags, deps, heads, lemmas, morphs):
    spacy = pytest.importorskip("spacy")
    from spacy.tokens import Doc

    vocab = spacy.blank("en").vocab
    return Doc(vocab, words=words, pos=pos, tags=tags, deps=deps, heads=heads, lemmas=lemmas, morphs=morphs)


def test_noun_chunks_drop_abstract_plural_group_and_pronoun_chunks():
    # "A brown dog chases two cats in the wind while people and a family watch it"
    words = "A brown dog chases two cats in the wind while people and a family watch it".split()
    pos = "DET ADJ NOUN VERB NUM NOUN ADP DET NOUN SCONJ NOUN CCONJ DET NOUN VERB PRON".split()
    tags = "DT JJ NN VBZ CD NNS IN DT NN IN NNS CC DT NN VBP PRP".split()
    deps = "det amod nsubj ROOT nummod dobj prep det pobj mark nsubj cc det conj advcl dobj".split()
    heads = [2, 2, 3, 3, 5, 3, 3, 8, 6, 14, 14, 10, 13, 10, 3, 14]
    lemmas = "a brown dog chase two cat in the wind while people and a family watch it".split()
    morphs = [
        "",
        "",
        "Number=Sing",
        "",
        "NumType=Card",
        "Number=Plur",
        "",
        "",
        "Number=Sing",
        "",
        "Number=Plur",
        "",
        "",
        "Number=Sing",
        "",
        "Case=Acc|Number=Sing|Person=3|PronType=Prs",
    ]
    chunks = doc_chunks(_doc(words, pos, tags, deps, heads, lemmas, morphs))
    assert [(c.text, c.problem) for c in chunks] == [
        ("A brown dog", None),
        ("two cats", PLURAL),
        ("the wind", ABSTRACT),
        ("people", PLURAL),
        ("a family", PLURAL),
        ("it", PRONOUN),
    ]


def test_description_is_the_chunks_subtree_up_to_a_conjunct():
    # "a man riding a horse and a dog"
    words = "a man riding a horse and a dog".split()
    pos = "DET NOUN VERB DET NOUN CCONJ DET NOUN".split()
    tags = "DT NN VBG DT NN CC DT NN".split()
    deps = "det ROOT acl det dobj cc det conj".split()
    heads = [1, 1, 1, 4, 2, 1, 7, 1]
    morphs = ["", "Number=Sing", "", "", "Number=Sing", "", "", "Number=Sing"]
    chunks = doc_chunks(_doc(words, pos, tags, deps, heads, words, morphs))
    assert [(c.text, c.description, c.problem) for c in chunks] == [
        ("a man", "a man riding a horse", None),
        ("a horse", "a horse", None),
        ("a dog", "a dog", None),
    ]


def test_a_missing_spacy_model_names_the_download_command():
    pytest.importorskip("spacy")
    with pytest.raises(ImportError, match="python -m spacy download en_core_web_nonexistent"):
        load_spacy("en_core_web_nonexistent")


# ----------------------------------------------------------------------------------------------------------------
# resume, bad input


class _Killed(BaseException):  # as KeyboardInterrupt or SystemExit: not counted as a bad video
    pass


class _DyingTracker(ReplayTracker):
    """Dies (as a killed process would stop) on its `calls`-th video."""

    def __init__(self, *args, calls, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = calls

    def __call__(self, frames, first_boxes, key=""):
        self.calls -= 1
        if self.calls < 0:
            raise _Killed
        return super().__call__(frames, first_boxes, key)


def test_a_killed_run_resumes_skipping_finished_shards_and_writes_every_record_once(synth, tmp_path):
    clean, _ = _build(synth, tmp_path / "clean")
    annotations = synth / "annotations.jsonl"
    with pytest.raises(_Killed):
        _build(synth, tmp_path / "run", tracker=_DyingTracker(annotations, noise=0.01, calls=4))
    done = sorted(p.name for p in (tmp_path / "run" / "shards").glob("*.json"))
    assert done == ["shard-00000.json"]  # shard 0 (3 videos) finished, shard 1 died half way
    assert not (tmp_path / "run" / "annotations.jsonl").exists()  # no partial dataset
    resumed, _ = _build(synth, tmp_path / "run")
    assert resumed["run"]["shards_skipped_as_done"] == 1
    assert resumed["funnel"] == clean["funnel"]
    lines = (tmp_path / "run" / "annotations.jsonl").read_text().splitlines()
    assert lines == (tmp_path / "clean" / "annotations.jsonl").read_text().splitlines()
    assert len({json.loads(line)["id"] for line in lines}) == len(lines)


def test_bad_videos_are_counted_by_reason(synth, tmp_path):
    captions = tmp_path / "captions.jsonl"
    good = (synth / "captions.jsonl").read_text().splitlines()[0]
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    lines = [
        good,
        json.dumps({"video": "missing.mp4", "caption": "a red car"}),
        "{not json",
        json.dumps({"video": str(tmp_path / "broken.mp4"), "caption": "a cat"}),
        json.dumps({"video": json.loads(good)["video"], "caption": "", "id": "no-caption"}),
    ]
    captions.write_text("\n".join(lines) + "\n")
    rows = read_inputs(captions, synth / "frames")
    annotations = synth / "annotations.jsonl"
    config = BuildConfig(out=tmp_path / "out", progress=False)
    summary = build(rows, None, ReplayDetector(annotations), ReplayTracker(annotations), config)
    assert summary["dropped"]["videos"] == {"no_caption": 2 + 7, "unreadable_video": 2}  # 7 synth videos unlisted
    assert summary["funnel"]["videos_read"] == 1 and summary["funnel"]["trajectories_written"] >= 1


class _KeyRecording(ReplayTracker):
    """Remembers the keys it is given (the video ids, by the `Tracker` protocol)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.keys = []

    def __call__(self, frames, first_boxes, key=""):
        self.keys.append(key)
        return super().__call__(frames, first_boxes, key)


def test_a_bom_and_a_line_that_is_not_utf8_in_the_captions_file(synth, tmp_path):
    lines = (synth / "captions.jsonl").read_text().splitlines()
    latin1 = json.loads(lines[1]) | {"caption": "un carré rouge"}
    captions = tmp_path / "captions.jsonl"
    captions.write_bytes(
        b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, as Windows editors write
        + (lines[0] + "\n").encode()
        + (json.dumps(latin1, ensure_ascii=False) + "\n").encode("latin-1")
        + "".join(line + "\n" for line in lines[2:]).encode()
    )
    rows = read_inputs(captions, synth / "frames")
    assert rows[0]["vid"] == json.loads(lines[0])["id"] and not rows[0]["problem"]  # the BOM is not part of line 1
    assert (rows[1]["vid"], rows[1]["problem"]) == ("line-2", "caption_line_not_utf8")
    annotations = synth / "annotations.jsonl"
    tracker = _KeyRecording(annotations, noise=0.01)
    config = BuildConfig(out=tmp_path / "out", progress=False)
    summary = build(rows, None, ReplayDetector(annotations), tracker, config)
    # the line's video is then a video without a caption line
    assert summary["dropped"]["videos"] == {"caption_line_not_utf8": 1, "no_caption": 1}
    funnel = summary["funnel"]
    assert funnel["videos"] == len(lines) + 1 and funnel["videos_read"] == len(lines) - 1
    assert (
        funnel["trajectories_tracked"]
        == sum(summary["dropped"]["trajectories"].values()) + funnel["trajectories_written"]
    )
    # the tracker gets video ids, not paths
    assert tracker.keys and set(tracker.keys) <= {row["vid"] for row in rows if not row["problem"]}
    assert all("/" not in key for key in tracker.keys)


def test_merge_counts_trajectories_dropped_for_a_box_outside_the_frame(tmp_path):
    counts = {"videos": 1, "videos_read": 1, "trajectories_tracked": 2, "trajectory_dropped_box_outside_frame": 1}
    counts |= {"trajectory_dropped_kalman_drift": 1}
    (tmp_path / "shards").mkdir()
    (shard_path(tmp_path, 0).with_suffix(".jsonl")).write_text("")
    status = {"videos": [{"vid": "v", "problem": "", "counts": counts}], "records": 0}
    shard_path(tmp_path, 0).with_suffix(".json").write_text(json.dumps(status))
    summary = merge(tmp_path, 1, BuildConfig(out=tmp_path, progress=False))
    dropped = summary["dropped"]["trajectories"]
    assert dropped["box_outside_frame"] == dropped[DRIFT] == 1
    assert (
        sum(dropped.values()) + summary["funnel"]["trajectories_written"] == summary["funnel"]["trajectories_tracked"]
    )


class _FailingTracker(ReplayTracker):
    """Fails on one video, as a model running out of memory on a long one would."""

    def __call__(self, frames, first_boxes, key=""):
        if key.endswith("synth-s3-000002"):
            raise RuntimeError("CUDA out of memory")
        return super().__call__(frames, first_boxes, key)


def test_a_video_the_tracker_fails_on_is_counted_and_the_rest_are_built(synth, tmp_path):
    clean, _ = _build(synth, tmp_path / "clean")
    failing, _ = _build(synth, tmp_path / "run", tracker=_FailingTracker(synth / "annotations.jsonl", noise=0.01))
    assert failing["dropped"]["videos"] == {"tracker_failed: RuntimeError": 1}
    written = [json.loads(line)["vid"] for line in (tmp_path / "run" / "annotations.jsonl").read_text().splitlines()]
    assert "synth-s3-000002" not in written
    clean_vids = [
        json.loads(line)["vid"] for line in (tmp_path / "clean" / "annotations.jsonl").read_text().splitlines()
    ]
    lost = clean_vids.count("synth-s3-000002")
    assert failing["funnel"]["trajectories_written"] == clean["funnel"]["trajectories_written"] - lost > 0


def test_two_accelerate_processes_split_the_shards(synth, tmp_path):
    annotations = synth / "annotations.jsonl"
    # Two CPU processes: accelerate's `--cpu` launches one; `--multi_gpu` with ACCELERATE_USE_CPU runs torchrun + gloo.
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "-m",
        "elysium.cli",
        "data",
        "build",
        "--videos",
        str(synth / "frames"),
        "--captions",
        str(synth / "captions.jsonl"),
        "--detector",
        f"replay:{annotations}",
        "--tracker",
        f"replay:{annotations}",
        "--out",
        str(tmp_path / "out"),
        "--shard-size",
        "2",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run"]["processes"] == 2 and summary["run"]["shards"] == 4
    single, _ = _build(synth, tmp_path / "single", shard_size=2)
    assert summary["funnel"] == single["funnel"]


# ----------------------------------------------------------------------------------------------------------------
# the real transformers classes: tiny random OWLv2 and SAM 2 video on the demo video


def _tiny_owlv2(folder: Path) -> Path:
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    # A character-level CLIP BPE vocabulary (no merges), built here; OWL reads a query as padding when its first
    # id is 0, so the special tokens take the last ids as in CLIP's real vocabulary.
    vocab = {"!": 0}
    for c in string.ascii_lowercase + string.digits + ".,'-":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    torch.manual_seed(0)
    config = Owlv2Config(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "bos_token_id": len(vocab) - 2,
            "eos_token_id": len(vocab) - 1,
            "pad_token_id": len(vocab) - 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        projection_dim=32,
    )
    Owlv2ForObjectDetection(config).save_pretrained(folder)
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessorPil(size={"height": 64, "width": 64}), tokenizer=tokenizer
    )
    processor.save_pretrained(folder)
    return folder


def _tiny_grounding_dino(folder: Path) -> Path:
    from transformers import BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil

    # A WordPiece vocabulary of letters (words split into "r ##e ##d"), built here; a tiny Swin and BERT.
    letters = list(string.ascii_lowercase)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + letters + ["##" + c for c in letters]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, model_max_length=32)
    torch.manual_seed(0)
    config = GroundingDinoConfig(
        backbone_config={
            "model_type": "swin",
            "image_size": 64,
            "patch_size": 4,
            "embed_dim": 8,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 1, 1],
            "window_size": 2,
            "out_features": ["stage2", "stage3", "stage4"],
        },
        text_config={
            "model_type": "bert",
            "vocab_size": len(words),
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
        },
        num_queries=10,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        d_model=32,
        num_feature_levels=3,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=32,
    )
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["owlv2", "grounding-dino"])
def test_detector_batches_give_what_one_image_and_chunk_at_a_time_gives(tmp_path, kind):
    from elysium.data_engine.detect import TransformersDetector
    from elysium.processing.video import read_video

    build_model = _tiny_owlv2 if kind == "owlv2" else _tiny_grounding_dino
    detector = TransformersDetector.from_pretrained(str(build_model(tmp_path / kind)), batch_size=4)
    assert detector.model.config.model_type == kind and detector.per_image == (kind == "owlv2")
    video = read_video(DEMO, size=None)
    frames = [video.frames[0], video.frames[24], video.frames[47]]
    queries = [["a large red square", "a blue circle"]] * 3
    batched = detector(frames, queries)
    height, width = video.frames.shape[1:3]
    for t, found in enumerate(batched):
        assert len(found) == 2
        for q, detection in enumerate(found):
            alone = detector([frames[t]], [[queries[t][q]]])[0][0] if kind != "owlv2" else None
            assert detection is not None and 0 <= detection.score <= 1
            x1, y1, x2, y2 = detection.box
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            if alone is not None:  # Grounding DINO: padding the batch's captions changes nothing
                assert detection.score == pytest.approx(alone.score, abs=1e-4)
                assert np.allclose(detection.box, alone.box, atol=1e-2)
    # OWL grounds all of an image's queries in one pass: the same list alone gives the same answer
    if kind == "owlv2":
        alone = detector([frames[1]], [queries[1]])[0]
        assert [d.score for d in alone] == pytest.approx([d.score for d in batched[1]], abs=1e-4)


def _tiny_sam2_video(folder: Path) -> Path:
    from transformers import Sam2VideoConfig, Sam2VideoModel

    # Hidden width 128 over a memory width of 64: the video model's memory attention reads 64-wide memories
    # (fixed in transformers) and splits wider object pointers into 64-wide pieces.
    vision = {
        "model_type": "sam2_vision_model",
        "backbone_config": {
            "model_type": "sam2_hiera_det_model",
            "hidden_size": 8,
            "num_attention_heads": 1,
            "image_size": [64, 64],
            "blocks_per_stage": [1, 1, 2, 1],
            "embed_dim_per_stage": [8, 16, 32, 64],
            "num_attention_heads_per_stage": [1, 1, 1, 1],
            "window_size_per_stage": [4, 4, 4, 4],
            "global_attention_blocks": [3],
            "window_positional_embedding_background_size": [2, 2],
        },
        "backbone_channel_list": [64, 32, 16, 8],
        "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]],
        "fpn_hidden_size": 128,
    }
    # Random weights: some seeds give an empty mask on some frame (confidence 0, dropped by any threshold); seed 2
    # tracks the demo's box on every frame, so the whole path down to a written record runs.
    torch.manual_seed(2)
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": 128, "image_size": 64, "patch_size": 16, "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 128, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
        image_size=64,
        num_maskmem=2,
        memory_attention_hidden_size=128,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[4, 4],
        memory_encoder_hidden_size=128,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=64,
        max_object_pointers_in_encoder=2,
    )
    Sam2VideoModel(config).save_pretrained(folder)
    return folder


def test_tiny_owlv2_and_sam2_video_run_end_to_end_on_the_demo_video(tmp_path, capsys):
    detector = _tiny_owlv2(tmp_path / "owlv2")
    tracker = _tiny_sam2_video(tmp_path / "sam2")
    demo = json.loads((REPO / "assets" / "demo.json").read_text())
    captions = tmp_path / "captions.jsonl"
    captions.write_text(
        json.dumps({"video": str(DEMO), "caption": demo["description"], "chunks": ["a large red square", "the wind"]})
        + "\n"
    )
    out = tmp_path / "out"
    # Random weights score anything: open every filter so the whole path runs and writes records.
    code = elysium_main(
        [
            "data",
            "build",
            "--captions",
            str(captions),
            "--detector",
            str(detector),
            "--tracker",
            str(tracker),
            "--out",
            str(out),
            "--detector-threshold",
            "0",
            "--tracker-threshold",
            "0",
            "--iou-threshold",
            "0",
            "--kalman-gate",
            "1e12",
            "--preview",
            "1",
            "--no-progress",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary["dropped"]
    funnel = summary["funnel"]
    assert funnel["videos_read"] == 1 and funnel["chunks_found"] == 2 and funnel["chunks_kept"] == 1
    assert summary["dropped"]["chunks"][ABSTRACT] == 1
    assert funnel["trajectories_tracked"] == 1 and funnel["trajectories_written"] == 1
    record = json.loads((out / "annotations.jsonl").read_text())
    assert len(record["frames"]) == len(record["box"]) == demo["num_frames"]
    assert record["frame_size"] == demo["frame_size"] and record["object_class"] == "a large red square"
    assert record["metadata"]["detector"].endswith("owlv2") and record["metadata"]["tracker"].endswith("sam2")
    assert 0 < record["metadata"]["tracker_confidence_min"] < 1  # a sigmoid of the object score
    assert (out / "preview" / "demo.mp4").is_file()
    assert elysium_main(["data", "check", str(out / "annotations.jsonl"), "--frames-root", str(out)]) == 0


def test_sft_trains_on_the_built_dataset(synth, tmp_path):
    from elysium.training.config import load_config
    from elysium.training.sft import train

    summary, _ = _build(synth, tmp_path / "built")
    config = load_config(
        REPO / "training" / "configs" / "tiny-smoke.yaml",
        [
            "--training.output_dir",
            str(tmp_path / "run"),
            "--training.max_steps",
            "2",
            "--training.save_steps",
            "2",
            "--training.per_device_train_batch_size",
            "2",
        ],
    )
    outputs = summary["outputs"]
    data = dataclasses.replace(config.data, synthetic=None, track=[outputs["annotations"]])
    config = dataclasses.replace(config, data=dataclasses.replace(data, frames_root=outputs["frames_root"]))
    trainer = train(config)
    assert trainer.state.global_step == 2 and (tmp_path / "run" / "final" / "model.safetensors").is_file()
    skips = json.loads((tmp_path / "run" / "data_skip_counts.json").read_text())
    assert skips["validation"] == {"used": summary["funnel"]["trajectories_written"]}
