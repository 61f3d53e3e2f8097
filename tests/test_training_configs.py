"""Shipped configs parse, overrides apply, and each stage trains exactly the parameters it should."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import PIL.Image
import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from safetensors.torch import load_file
from trl import SFTConfig

from elysium.synthetic import square_sets
from elysium.training.config import DataArgs, ModelArgs, apply_overrides, load_config, stage_configs
from elysium.training.curves import plot_runs, read_run
from elysium.training.decay_on_loss import DecayOnLoss
from elysium.training.model_setup import build_model_and_processor, set_trainable, sincos_2d
from elysium.training.sft import main, train
from elysium.training.ship_tiny import ship

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
# tiny.yaml's last stages train on shorter clips than the paper's 8 (the tracker's clip length is the last one's)
TINY_SHORT_CLIPS = {
    "stage2-video": 4,
    "rough-boxes": 4,
    "tight-crops-3": 3,
    "frames-96": 3,
    "looks": 3,
}


@pytest.mark.parametrize(
    "name", ["stage1", "stage2", "stage2_32frames", "stage2_streaming", "lora", "tiny-smoke", "tiny"]
)
def test_shipped_training_configs_are_valid(name):
    for stage, config in stage_configs(load_config(CONFIGS / f"{name}.yaml")):
        args = SFTConfig(**{**config.training, "bf16": False})  # bf16 needs a GPU to validate
        assert args.lr_scheduler_type.value == "cosine" and args.warmup_steps > 0
        DecayOnLoss.from_config(config.decay_on_loss, args.max_steps, args.logging_steps)  # raises if bad
        assert config.stage in ("stage1", "stage2", "lora")
        if not name.startswith("tiny"):
            assert config.training["bf16"] and args.gradient_checkpointing
        longest = 32 if name == "stage2_32frames" else TINY_SHORT_CLIPS.get(stage, 8)
        assert config.data.max_frames == longest


def test_tiny_recipe_points_first_then_images_then_video():
    stages = stage_configs(load_config(CONFIGS / "tiny.yaml", ["--training.output_dir", "out"]))
    names = [
        "squares",
        "clutter-squares",
        "one-object",
        "stage2-video",
        "rough-boxes",
        "tight-crops-3",
        "frames-96",
        "looks",
    ]
    assert [name for name, _ in stages] == names
    (_, squares), (_, clutter), (_, one), (_, video), (_, rough), (_, tight3), (_, big), (_, looks) = stages
    stages = stages[:4]
    # position-only squares first, from scratch, every patch kept, no generated videos yet
    assert squares.model.tiny and squares.model.t_selector_tokens == 64
    assert squares.model.system_prompt == ""  # saved with the processor; later stages load it from final/
    assert squares.data.synthetic is None and clutter.data.synthetic is None
    assert [s["name"] for s in square_sets(clutter.data.squares)] == ["squares", "clutter-squares"]
    assert square_sets(squares.data.squares)[0] == square_sets(clutter.data.squares)[0]  # the same plain squares, kept
    # the squares stay in the mix of every later stage
    for stage in (one, video):
        assert square_sets(stage.data.squares) == square_sets(clutter.data.squares)
        assert {"squares", "clutter-squares"} <= set(stage.data.weights)
    # the vision tower and projector: a tenth of the rate, then half, then held still for the clips
    rates = [stage.model.lr_scale["vision_tower"] for _, stage in stages]
    assert rates == [0.1, 0.5, 0.5, 0.0]
    assert all(s.model.lr_scale["multi_modal_projector"] == r for (_, s), r in zip(stages, rates))
    # the gate's straight-through gradient in the first stage only (it grew the vision features at half the rate)
    assert [stage.model.t_selector_straight_through for _, stage in stages] == [True, False, False, False]
    assert one.data.synthetic["objects_per_video"] == [1, 1]
    assert one.data.synthetic["sources"] == ["grounding"]
    assert one.data.synthetic["out_dir"] != video.data.synthetic["out_dir"]  # its own generated set
    assert video.data.synthetic["sources"] == ["track", "grounding"]
    # the one-object images stay in the mix beside the scenes' (the generated set's `grounding`)
    one_dir = one.data.synthetic["out_dir"]
    assert video.data.grounding == [{"file": f"{one_dir}/grounding.jsonl", "image_root": one_dir, "name": "one-object"}]
    assert video.data.track_context == [2.0, 4.0] and one.data.track_context is None
    assert video.model.model_name_or_path == "out/one-object/final"
    assert video.training["output_dir"] == "out/stage2-video"
    assert len({s.data.synthetic["seed"] for s in (one, video)}) == 1  # one data seed
    # clips of 2-4 frames, the first box near the middle of its crop (as the tracker centres clips)
    assert (video.data.min_frames, video.data.max_frames) == (2, 4)
    assert video.data.track_place == [0.35, 0.65]
    # then the same clips with a rough SOT prompt box, the vision tower learning again at half the rate
    assert rough.model.model_name_or_path == "out/stage2-video/final"
    assert rough.data == dataclasses.replace(video.data, track_box_jitter=0.25)
    assert rough.model.lr_scale == {"vision_tower": 0.5, "multi_modal_projector": 0.5}
    assert not rough.model.t_selector_straight_through
    # then those clips cut tighter around the first box (the tracker's square: their geometric middle, ~2.0), of
    # 2-3 frames (the model records 3, the tracker's clip length)
    assert tight3.model == dataclasses.replace(rough.model, model_name_or_path="out/rough-boxes/final")
    assert tight3.data == dataclasses.replace(rough.data, track_context=[1.5, 2.7], max_frames=3)
    # then those clips at 96-px frames (the only stage that changes the frame size; 64 before)
    assert big.model == dataclasses.replace(tight3.model, model_name_or_path="out/tight-crops-3/final", image_size=96)
    assert big.data == tight3.data and big.training == {**tight3.training, "output_dir": "out/frames-96"}
    assert squares.model.image_size == 64
    # last, the same clips and frames with Video-REG and the scenes' REC/REG weighted up, the vision tower held
    assert looks.model == dataclasses.replace(video.model, model_name_or_path="out/frames-96/final", image_size=96)
    assert looks.data.task_weights == {"sot": 1.0, "rsot": 2.0, "video_reg": 3.0}
    assert looks.data.weights == {**big.data.weights, "grounding": 1.0}
    assert {k: v for k, v in dataclasses.asdict(looks.data).items() if k not in ("task_weights", "weights")} == {
        k: v for k, v in dataclasses.asdict(big.data).items() if k not in ("task_weights", "weights")
    }


def test_stage_configs_merge_and_overrides(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "model: {tiny: true}\ndata: {max_frames: 8, min_frames: 2}\ntraining: {output_dir: runs/x, max_steps: 9}\n"
        "stages:\n  - {name: a, data: {max_frames: 1}, training: {max_steps: 5}}\n  - {name: b, stage: stage1}\n"
    )
    stages = dict(stage_configs(load_config(recipe, ["--training.max_steps", "2"])))
    assert stages["a"].data == DataArgs(max_frames=1, min_frames=2)  # merged key by key
    assert stages["a"].training["max_steps"] == 2 and stages["b"].training["max_steps"] == 2  # CLI wins
    assert stages["b"].stage == "stage1" and stages["a"].stage == "stage2"
    assert stages["b"].model == ModelArgs(model_name_or_path="runs/x/a/final")
    assert len(stage_configs(load_config(CONFIGS / "tiny-smoke.yaml"))) == 1
    for bad, message in [
        ("stages: []", "non-empty list"),
        ("stages: [{name: a}, {name: a}]", "unique"),
        ("stages: [{name: ../a}]", "folder name"),
        ("stages: [{name: a, modle: {}}]", "unknown keys"),
    ]:
        recipe.write_text(bad)
        with pytest.raises(ValueError, match=message):
            load_config(recipe)


@pytest.mark.parametrize("name", ["deepspeed_zero2", "deepspeed_zero3", "fsdp"])
def test_shipped_accelerate_configs_load(name):
    config = load_config_from_file(str(CONFIGS / "accelerate" / f"{name}.yaml"))
    assert config.mixed_precision == "bf16" and config.num_processes == 8


def test_overrides():
    config = {"training": {"max_steps": 5, "output_dir": "a"}, "data": {"max_frames": 8}, "stage": "stage1"}
    out = apply_overrides(
        config, ["--training.max_steps", "7", "--max_frames", "4", "--stage", "lora", "--data.task_weights", "{sot: 2}"]
    )
    assert out["training"]["max_steps"] == 7 and out["data"] == {"max_frames": 4, "task_weights": {"sot": 2}}
    assert out["stage"] == "lora" and config["training"]["max_steps"] == 5  # the input is not modified
    with pytest.raises(ValueError, match="ambiguous or unknown"):
        apply_overrides(config, ["--nope", "1"])


def _trainable(model) -> set[str]:
    return {
        name.split(".")[1] if name.startswith("model.") else name.split(".")[0]
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def test_stage_freezing():
    model, _ = build_model_and_processor(ModelArgs(tiny=True))
    set_trainable(model, "stage1")
    assert _trainable(model) == {"t_selector", "multi_modal_projector"}
    set_trainable(model, "stage2")
    assert all(p.requires_grad for p in model.parameters())

    model, _ = build_model_and_processor(ModelArgs(tiny=True))
    peft_model = set_trainable(model, "lora", {"r": 4, "alpha": 8})
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("language_model" in n and "q_proj.lora_A" in n for n in names)
    assert any("o_proj.lora_B" in n for n in names)
    assert not any("vision_tower" in n for n in names)  # CLIP's q/k/v_proj are not adapted
    assert any("t_selector" in n for n in names) and any("multi_modal_projector" in n for n in names)
    assert all("lora_" in n or "t_selector" in n or "multi_modal_projector" in n for n in names)


@pytest.mark.parametrize("stage", ["stage1", "lora"])
def test_stage_training_changes_only_its_parameters_and_saves_a_loadable_model(tmp_path, stage):
    config = load_config(
        CONFIGS / "tiny-smoke.yaml",
        [
            "--data.synthetic.out_dir",
            str(tmp_path / "data"),
            "--data.synthetic.videos",
            "4",
            "--data.synthetic.frames_per_video",
            "[8, 8]",
            "--training.output_dir",
            str(tmp_path / "run"),
            "--training.max_steps",
            "3",
            "--training.save_steps",
            "3",
            "--training.per_device_train_batch_size",
            "2",
            "--stage",
            stage,
            "--lora",
            "{r: 4, alpha: 8}",
            "--data.track_context",
            "[2.0, 3.0]",
        ],
    )
    initial, _ = build_model_and_processor(config.model)
    initial = initial.state_dict()
    train(config)
    final = load_file(tmp_path / "run" / "final" / "model.safetensors")
    assert final.keys() == initial.keys()  # LoRA merged away: a plain Elysium folder
    changed = {k for k in final if not torch.equal(final[k], initial[k])}
    assert any("t_selector" in k for k in changed) and any("multi_modal_projector" in k for k in changed)
    assert not any("vision_tower" in k for k in changed)
    llm_changed = {k for k in changed if "language_model" in k or k.startswith("lm_head")}
    if stage == "stage1":
        assert not llm_changed
    else:  # merged LoRA deltas land on the attention projections only
        assert llm_changed and all(k.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj") for k in llm_changed)

    from transformers import AutoModel

    import elysium.modeling_elysium  # noqa: F401

    saved = AutoModel.from_pretrained(tmp_path / "run" / "final")
    assert type(saved).__name__ == "ElysiumForConditionalGeneration"
    assert saved.config.track_search_context == 2.449  # sqrt(2 x 3): trackers cut clips as training did
    assert saved.config.track_clip_len == config.data.max_frames  # and track in clips as long


def test_recipe_of_stages_trains_in_order_each_from_the_last_and_resumes_past_finished_stages(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        (CONFIGS / "tiny-smoke.yaml").read_text()
        + "stages:\n"
        + "  - {name: images, data: {synthetic: {sources: [grounding]}},\n"
        + "     decay_on_loss: {below: 0.1, decay_steps: 1, window: 5}}\n"
        + "  - {name: video, model: {t_selector_tokens: 3, t_selector_straight_through: false},\n"
        + "     data: {synthetic: {sources: [track, grounding]}}}\n"
    )
    overrides = {
        "--data.synthetic.out_dir": str(tmp_path / "data"),
        "--data.synthetic.videos": "3",
        "--data.synthetic.frames_per_video": "[8, 8]",
        "--training.output_dir": str(tmp_path / "run"),
        "--training.max_steps": "2",
        "--training.save_steps": "2",
        "--training.per_device_train_batch_size": "2",
        "--model.lr_scale": "{vision_tower: 0.5}",
    }
    config = load_config(recipe, [item for pair in overrides.items() for item in pair])
    trainer = train(config)
    vision = {id(p) for p in trainer.model.model.vision_tower.parameters()}
    rates = {(id(p) in vision, g["initial_lr"]) for g in trainer.optimizer.param_groups for p in g["params"]}
    lr = trainer.args.learning_rate
    assert rates == {(True, 0.5 * lr), (False, lr)}  # kept into stage 2, which loads stage 1's final/
    assert trainer.optimizer.param_groups[0]["initial_lr"] == lr  # the rate Trainer logs is the run's own
    images, video = tmp_path / "run" / "images" / "final", tmp_path / "run" / "video" / "final"
    assert Path(trainer.args.output_dir).name == "video"
    assert trainer.train_dataset.num_rows and (images / "model.safetensors").is_file()
    # Stage 1 saw images only (one frame a sample), stage 2 video clips too.
    assert (tmp_path / "data" / "grounding.jsonl").read_text().count("\n") >= 3
    first, second = load_file(images / "model.safetensors"), load_file(video / "model.safetensors")
    assert first.keys() == second.keys() and any(not torch.equal(first[k], second[k]) for k in first)
    # the video stage keeps 3 tokens a frame where the image stage kept 2: model and processor agree
    assert json.loads((video / "config.json").read_text())["t_selector_tokens"] == 3
    assert json.loads((video / "processor_config.json").read_text())["num_image_tokens"] == 3
    assert json.loads((images / "config.json").read_text())["t_selector_tokens"] == 2
    # the video stage holds the gate its first stage trained: no gradient reaches it, the weights stay as saved
    assert not trainer.model.model.t_selector.straight_through
    assert json.loads((video / "config.json").read_text())["t_selector_straight_through"] is False
    assert json.loads((images / "config.json").read_text())["t_selector_straight_through"] is True
    gate = [k for k in first if ".t_selector." in k]
    assert gate and all(torch.equal(first[k], second[k]) for k in gate)
    assert not list(tmp_path.glob("run/*/.final.partial"))  # final/ is renamed into place whole

    curves = read_run(tmp_path / "run")  # the record of the recipe: stages end to end
    assert [(s["name"], s["first_step"], s["steps"]) for s in curves["stages"]] == [("images", 0, 2), ("video", 2, 2)]
    assert all(e["loss"] > 0 for s in curves["stages"] for e in s["log"])
    with PIL.Image.open(plot_runs([curves], tmp_path / "curves.png")) as image:
        assert image.size[0] > 400

    shipped = ship(tmp_path / "run", tmp_path / "shipped", config_path=str(recipe))  # as elysium-tiny ships
    record = json.loads((shipped / "elysium_recipe.json").read_text())
    assert record["data_seed"] == 0 and [s["name"] for s in record["stages"]] == ["images", "video"]
    assert record["stages"][0]["sources"] == ["grounding"] and record["stages"][1]["steps"] == 2
    assert record["stages"][1]["t_selector_straight_through"] is False  # the card says the video stage held the gate
    assert record["stages"][0]["lr_schedule"] == {"decay_on_loss": {"below": 0.1, "decay_steps": 1, "window": 5}}
    assert record["stages"][1]["lr_schedule"] == "cosine"  # a stage's own decay_on_loss is its own
    assert "| held |" in (shipped / "README.md").read_text()
    assert "# elysium-tiny" in (shipped / "README.md").read_text() and (shipped / "training_curves.png").is_file()
    assert "This folder carries no code" in (shipped / "README.md").read_text()  # not "code ships in this folder"
    assert not (shipped / "training_args.bin").exists()
    assert not list(shipped.glob("*.py")) and "auto_map" not in (shipped / "config.json").read_text()  # no code copy
    assert load_file(shipped / "model.safetensors").keys() == second.keys()

    assert train(config) is None  # both finished: nothing to do
    (video / "config.json").unlink()
    assert Path(train(config).args.output_dir).name == "video"  # only the unfinished stage runs again
    assert load_file(images / "model.safetensors").keys() == first.keys()


def test_tiny_models_take_sizes_feature_layer_and_a_sine_cosine_position_start():
    model_cfg = load_config(CONFIGS / "tiny.yaml").model
    model, processor = build_model_and_processor(model_cfg)
    vision, text = model.config.vision_config, model.config.text_config
    assert (vision.hidden_size, vision.patch_size, vision.image_size) == (96, 8, 64) and text.hidden_size == 128
    assert model.config.vision_feature_layer == -1 and model.config.t_selector_tokens == 64
    assert processor.num_image_tokens == 64
    table = model.model.vision_tower.embeddings.position_embedding.weight.detach()
    assert torch.equal(table[0], torch.zeros(96)) and torch.allclose(table[1:], sincos_2d(8, 96))
    assert torch.cdist(table[1:], table[1:]).add(torch.eye(64)).min() > 0.1  # every patch has its own code
    frozen, _ = build_model_and_processor(dataclasses.replace(model_cfg, t_selector_straight_through=False))
    assert frozen.config.t_selector_straight_through is False
    plain, _ = build_model_and_processor(dataclasses.replace(model_cfg, position_init=None))
    assert plain.model.vision_tower.embeddings.position_embedding.weight.std() < 0.05  # the default init


def test_a_stage_can_take_a_saved_model_to_larger_frames(tmp_path):
    model_cfg = load_config(CONFIGS / "tiny.yaml").model
    model_cfg = dataclasses.replace(model_cfg, vision={**model_cfg.vision, "num_hidden_layers": 1})
    model, processor = build_model_and_processor(model_cfg)
    model.save_pretrained(tmp_path / "small")
    processor.save_pretrained(tmp_path / "small")
    big, big_processor = build_model_and_processor(ModelArgs(model_name_or_path=str(tmp_path / "small"), image_size=96))
    assert big.config.vision_config.image_size == 96 and big.config.t_selector_tokens == 144  # every patch still
    assert big_processor.num_image_tokens == 144 and big_processor.image_processor.size == {"height": 96, "width": 96}
    assert big.model.t_selector.trans_weight.shape == (144, 144) and big.model.t_selector.trans_weight.std() > 0.01
    # Independent reference: CLIP's own position interpolation, done at each call, on the unchanged tower.
    pixels = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want = model.model.vision_tower(pixels, interpolate_pos_encoding=True).last_hidden_state
        got = big.model.vision_tower(pixels).last_hidden_state
        assert torch.allclose(got, want, atol=1e-5)
        assert [f.shape[0] for f in big.get_image_features(pixel_values=pixels).pooler_output] == [144, 144]
    frame = PIL.Image.new("RGB", (160, 120), (200, 40, 40))
    assert big_processor.image_processor(frame, return_tensors="pt")["pixel_values"].shape[-2:] == (96, 96)
    big.save_pretrained(tmp_path / "big")
    big_processor.save_pretrained(tmp_path / "big")
    again, again_processor = build_model_and_processor(
        ModelArgs(model_name_or_path=str(tmp_path / "big"), image_size=96)
    )
    assert again.config.t_selector_tokens == 144 and again_processor.num_image_tokens == 144
    assert torch.equal(again.model.t_selector.trans_weight, big.model.t_selector.trans_weight)  # no second resize
    for size in (100, 0):
        with pytest.raises(ValueError, match="a positive multiple of the patch size"):
            build_model_and_processor(ModelArgs(model_name_or_path=str(tmp_path / "small"), image_size=size))
    some, some_processor = build_model_and_processor(dataclasses.replace(model_cfg, t_selector_tokens=40))
    some.save_pretrained(tmp_path / "some")
    some_processor.save_pretrained(tmp_path / "some")
    with pytest.raises(ValueError, match="36 patches a frame, fewer than the 40"):
        build_model_and_processor(ModelArgs(model_name_or_path=str(tmp_path / "some"), image_size=48))
    kept, _ = build_model_and_processor(ModelArgs(model_name_or_path=str(tmp_path / "some"), image_size=96))
    assert kept.config.t_selector_tokens == 40  # a selector that dropped patches keeps its count


def test_a_missing_model_folder_is_one_clear_line(tmp_path, capsys):
    argv = ["--config", str(CONFIGS / "tiny-smoke.yaml"), "--data.synthetic.out_dir", str(tmp_path / "data")]
    argv += ["--data.synthetic.videos", "1", "--training.output_dir", str(tmp_path / "run")]
    assert main([*argv, "--model.model_name_or_path", str(tmp_path / "runs" / "final")]) == 2
    err = [
        line for line in capsys.readouterr().err.strip().splitlines() if "Warning" not in line and "warn(" not in line
    ]
    assert len(err) == 1 and err[0].startswith("error: model.model_name_or_path") and "no such folder" in err[0]
    assert main(["--config", str(tmp_path / "none.yaml")]) == 2 and "none.yaml" in capsys.readouterr().err


def test_refreshing_a_shipped_model_changes_its_report_and_views_only(tmp_path, capsys):
    """`ship_tiny --refresh`: a shipped folder re-scored without its run gets the new report in its record and
    card and, with `--views`, `track_views` in `config.json`; weights and every other config key stay."""
    import shutil

    from elysium.inference.default_model import DEFAULT_MODEL
    from elysium.training.ship_tiny import compact_report
    from elysium.training.ship_tiny import main as ship_main

    folder = tmp_path / "elysium-tiny"
    shutil.copytree(DEFAULT_MODEL, folder)
    before = json.loads((folder / "config.json").read_text())
    report = json.loads((Path(__file__).resolve().parents[1] / "docs/elysium-tiny/heldout/report.json").read_text())
    (next(iter(report["models"].values())))["sot"]["success_auc"] = 0.4567  # a report the card did not have
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert ship_main(["--refresh", str(folder), "--heldout", str(tmp_path / "report.json"), "--views", "3"]) == 0

    assert json.loads((folder / "config.json").read_text()) == {**before, "track_views": 3}
    assert (folder / "model.safetensors").read_bytes() == (Path(DEFAULT_MODEL) / "model.safetensors").read_bytes()
    assert json.loads((folder / "elysium_recipe.json").read_text())["heldout"] == compact_report(report)
    assert "45.7" in (folder / "README.md").read_text()
    assert ship_main(["--refresh", str(folder), "--heldout", str(tmp_path / "report.json"), "--views", "0"]) == 2
    assert "track_views" in capsys.readouterr().err
    assert json.loads((folder / "config.json").read_text())["track_views"] == 3  # the failed refresh left it whole

    # --compare: another run's curve beside the shipped one, whose record is kept from when it shipped
    shipped_runs = json.loads((folder / "training_curves.json").read_text())
    stage = tmp_path / "frozen-gate" / "squares" / "checkpoint-100"
    stage.mkdir(parents=True)
    log = [{"step": 50, "loss": 2.5, "learning_rate": 1e-3}, {"step": 100, "loss": 1.5, "learning_rate": 5e-4}]
    (stage / "trainer_state.json").write_text(json.dumps({"log_history": log, "global_step": 100}))
    (folder / "training_curves.png").unlink()
    argv = ["--refresh", str(folder), "--heldout", str(tmp_path / "report.json")]
    assert ship_main([*argv, "--compare", str(tmp_path / "frozen-gate")]) == 0
    runs = json.loads((folder / "training_curves.json").read_text())
    assert runs[0] == shipped_runs[0] and len(runs) == 2
    assert [e["loss"] for e in runs[1]["stages"][0]["log"]] == [2.5, 1.5]
    assert (folder / "training_curves.png").stat().st_size > 1000
