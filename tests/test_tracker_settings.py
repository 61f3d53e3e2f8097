"""`TrackerSettings`: the tracker's settings read from the model's config, overridden by keywords and CLI flags."""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace

import pytest

from elysium.cli import build_parser
from elysium.inference.track_cli import tracker_from_args
from elysium.inference.tracker import ElysiumTracker
from elysium.inference.tracker_settings import DEFAULT_CLIP_LEN, VIEWS, TrackerSettings

TRACK = ["track", "v.mp4", "--box", "0,0,4,4"]
FIELDS = [field.name for field in dataclasses.fields(TrackerSettings)]


def tracker_values(tracker: ElysiumTracker) -> dict:
    return {name: getattr(tracker, name) for name in [*FIELDS, "decoder"]}


def test_defaults_from_a_config_without_track_fields():
    """A config that says nothing (an older or foreign config: no `track_*` attributes at all, or all None) gets the
    paper's clips of 8 on whole frames, one view, boxes as answered."""
    expected = TrackerSettings(
        clip_len=8, max_new_tokens=None, search_context=None, views=1, refine_found=True, box_scale=1.0, decoder="auto"
    )
    assert DEFAULT_CLIP_LEN == 8
    assert TrackerSettings.from_model_config(SimpleNamespace()) == expected
    assert TrackerSettings() == expected
    blank = SimpleNamespace(track_clip_len=None, track_search_context=None, track_views=None, track_box_scale=None)
    assert TrackerSettings.from_model_config(blank) == expected


def test_defaults_from_a_config_with_track_fields(config):
    """The ElysiumConfig's stored `track_*` fields become the settings; the rest keep their defaults."""
    assert TrackerSettings.from_model_config(config) == TrackerSettings()  # the test config sets none of them
    tuned = type(config)(
        **{
            **config.to_dict(),
            "track_clip_len": 4,
            "track_search_context": 2.5,
            "track_views": 3,
            "track_box_scale": 1.25,
        }
    )
    settings = TrackerSettings.from_model_config(tuned)
    assert (settings.clip_len, settings.search_context, settings.views, settings.box_scale) == (4, 2.5, 3, 1.25)
    assert (settings.max_new_tokens, settings.refine_found, settings.decoder) == (None, True, "auto")
    assert isinstance(TrackerSettings.from_model_config(SimpleNamespace(track_search_context=2)).search_context, float)


def test_overrides_win_and_not_given_keeps_the_models():
    config = SimpleNamespace(track_clip_len=4, track_search_context=2.5, track_views=3, track_box_scale=1.25)
    model_own = TrackerSettings.from_model_config(config)
    # "model" (any setting the config stores) and None (any but search_context) are "not given"
    same = dict(clip_len=None, search_context="model", views="model", box_scale=None, max_new_tokens=None)
    assert TrackerSettings.from_model_config(config, **same) == model_own
    assert model_own.with_overrides(**{**same, "clip_len": "model", "views": None}) == model_own
    # search_context=None is a setting of its own: whole frames
    assert TrackerSettings.from_model_config(config, search_context=None).search_context is None
    assert model_own.with_overrides(search_context=None).search_context is None
    changed = TrackerSettings.from_model_config(
        config, clip_len=6, search_context=3, views=1, box_scale=1, max_new_tokens=9, refine_found=False
    )
    assert changed == TrackerSettings(6, 9, 3.0, 1, False, 1.0, "auto")
    assert model_own.with_overrides(decoder="generate").decoder == "generate"
    assert model_own.decoder == "auto"  # frozen: with_overrides made a new one
    with pytest.raises(dataclasses.FrozenInstanceError):
        model_own.views = 2


def test_cli_flags_override_the_models_settings(capsys):
    """The flags of `elysium track` go through `from_args`: flags left at their defaults keep the model's settings,
    given ones win, and a namespace without some flags (another command's) keeps the model's for those."""
    config = SimpleNamespace(track_clip_len=4, track_search_context=2.5, track_views=3, track_box_scale=1.25)
    parser = build_parser()
    assert TrackerSettings.from_args(config, parser.parse_args(TRACK)) == TrackerSettings.from_model_config(config)
    args = parser.parse_args(
        [
            *TRACK,
            "--clip-len",
            "6",
            "--search-context",
            "none",
            "--views",
            "2",
            "--box-scale",
            "1.1",
            "--max-new-tokens",
            "20",
            "--decoder",
            "generate",
        ]
    )
    assert TrackerSettings.from_args(config, args) == TrackerSettings(6, 20, None, 2, True, 1.1, "generate")
    assert TrackerSettings.from_args(config, parser.parse_args([*TRACK, "--search-context", "3"])).search_context == 3
    partial = SimpleNamespace(views=5, threads=None)  # a command with only some of the flags
    assert TrackerSettings.from_args(config, partial) == TrackerSettings(4, None, 2.5, 5, True, 1.25, "auto")


@pytest.mark.parametrize(
    "field, bad, message",
    [
        ("clip_len", 1, "clip_len must be >= 2 (clips overlap by one frame), got 1"),
        ("clip_len", 2.5, "clip_len must be >= 2"),
        ("clip_len", "four", "clip_len must be >= 2"),
        ("search_context", 0.5, "search_context=0.5: give a factor >= 1 (the region holds the whole target), None"),
        ("search_context", "wide", "search_context='wide': give a factor >= 1"),
        ("views", 0, f"views=0: give a number of test-time views from 1 to {len(VIEWS)}, or 'model'."),
        ("views", 99, "views=99: give a number of test-time views"),
        ("views", 1.5, "views=1.5: give a number of test-time views"),
        ("box_scale", 0, "box_scale=0: give a factor in (0, 4] the reported boxes are widened by"),
        ("box_scale", True, "box_scale=True: give a factor in"),
        ("box_scale", "wide", "box_scale='wide': give a factor in"),
        ("max_new_tokens", 0, "max_new_tokens=0: give a number of tokens >= 1, or None"),
        ("refine_found", "yes", "refine_found='yes': give True or False"),
        ("decoder", "beam", "decoder='beam': give 'constrained', 'strict', 'generate' or 'auto'."),
    ],
)
def test_invalid_settings_give_clear_messages(model, processor, field, bad, message):
    """The same message from the dataclass, from the model's config path and from the tracker's keyword."""
    with pytest.raises(ValueError, match=re.escape(message)):
        TrackerSettings(**{field: bad})
    with pytest.raises(ValueError, match=re.escape(message)):
        TrackerSettings.from_model_config(SimpleNamespace(), **{field: bad})
    with pytest.raises(ValueError, match=re.escape(message)):
        TrackerSettings().with_overrides(**{field: bad})
    with pytest.raises(ValueError, match=re.escape(message)):
        ElysiumTracker(model, processor, **{field: bad})


def test_model_without_a_config_and_unknown_names_are_explained():
    with pytest.raises(
        ValueError, match="views='model' needs the model's config; use TrackerSettings.from_model_config"
    ):
        TrackerSettings(views="model")
    with pytest.raises(TypeError, match="Unknown tracker setting.* view; the settings are clip_len, max_new_tokens"):
        TrackerSettings().with_overrides(view=2)


def test_tracker_from_settings_equals_tracker_from_keywords(model, processor, monkeypatch):
    monkeypatch.setattr(model.config, "track_search_context", 2.0)
    monkeypatch.setattr(model.config, "track_views", 3)
    keywords = dict(clip_len=4, max_new_tokens=12, box_scale=1.5, refine_found=False, decoder="generate")
    by_keywords = ElysiumTracker(model, processor, **keywords)
    settings = TrackerSettings.from_model_config(model.config, **keywords)
    by_settings = ElysiumTracker(model, processor, settings=settings)
    assert by_settings.settings == by_keywords.settings == settings
    assert tracker_values(by_settings) == tracker_values(by_keywords)
    assert tracker_values(by_keywords) == {
        "clip_len": 4,
        "max_new_tokens": 12,
        "search_context": 2.0,
        "views": 3,
        "refine_found": False,
        "box_scale": 1.5,
        "decoder": "generate",
    }
    # the model's own settings, by default, either way
    assert tracker_values(ElysiumTracker(model, processor)) == tracker_values(
        ElysiumTracker(model, processor, settings=TrackerSettings.from_model_config(model.config))
    )
    # keywords given beside settings are laid over them; "model" and None keep them
    over = ElysiumTracker(model, processor, views=1, search_context=None, settings=settings)
    assert (over.views, over.search_context, over.clip_len, over.refine_found) == (1, None, 4, False)
    # RSOT's second asking needs search regions: whole frames never refine
    assert ElysiumTracker(model, processor, search_context=None).refine_found is False
    assert ElysiumTracker(model, processor, settings=settings.with_overrides(refine_found=True)).refine_found
    with pytest.raises(TypeError, match="settings must be a TrackerSettings"):
        ElysiumTracker(model, processor, settings={"views": 2})


def test_tracker_attributes_write_through_to_checked_settings(model, processor):
    tracker = ElysiumTracker(model, processor, max_new_tokens=12)
    assert tracker.decoder == "generate"  # "auto" decodes with generate where max_new_tokens caps answers
    tracker.max_new_tokens = None
    assert tracker.settings.max_new_tokens is None and tracker.decoder == "constrained"
    tracker.clip_len = 5
    assert tracker.settings.clip_len == 5
    with pytest.raises(ValueError, match="views=9"):
        tracker.views = 9
    assert tracker.views == 1  # the bad value was refused, the settings kept


def test_tracker_from_args_uses_the_flags_over_the_models_settings(model, processor, monkeypatch):
    monkeypatch.setattr(model.config, "track_search_context", 2.0)
    monkeypatch.setattr(model.config, "track_box_scale", 1.25)
    args = build_parser().parse_args([*TRACK, "--clip-len", "4", "--views", "2", "--decoder", "generate"])
    tracker = tracker_from_args(model, processor, args)
    assert tracker.settings == TrackerSettings(4, None, 2.0, 2, True, 1.25, "generate")
    assert tracker_values(tracker) == tracker_values(
        ElysiumTracker(model, processor, clip_len=4, views=2, decoder="generate")
    )


def test_the_hub_copy_of_the_pipeline_ships_the_settings_module():
    """The exported pipeline is a flat copy: the tracker imports its settings as a sibling file."""
    from elysium.hub.export import pipeline_files

    files = pipeline_files()
    assert "tracker_settings.py" in files
    assert "from .tracker_settings import VIEWS, TrackerSettings" in files["tracker.py"]
    assert "from .boxes import check_box_scale" in files["tracker_settings.py"]
