"""Writing generated videos to disk in the ElysiumTrack-1M layout, resuming a cut-off run (see `scenes` for the
layout and conventions)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from elysium.utils.atomic import write_json_atomic, write_text_atomic
from elysium.utils.track_folder import frame_file, write_frame

from .scenes import VERSION, SynthConfig, grounding_rows, plan_video, render_frames, track_records

__all__ = ["SynthSummary", "synthesize"]


@dataclass
class SynthSummary:
    """What a `synthesize` call produced (resumed videos included) and how long it took."""

    out_dir: Path
    annotations: Path
    videos: int
    generated: int
    resumed: int
    records: int
    frames: int
    dropped_tracks: int
    seconds: float
    flags: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["out_dir"], data["annotations"] = str(self.out_dir), str(self.annotations)
        data["seconds_per_100_videos"] = round(100 * self.seconds / self.generated, 2) if self.generated else None
        return data


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a (possibly cut short) JSONL file; a broken last line from a killed run is skipped."""
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "vid" in row:
                rows.append(row)
    return rows


def _complete(records: list[dict[str, Any]], out_dir: Path) -> bool:
    """A video is done when all its tracks are recorded and every frame file is there."""
    if not records or len({r["id"] for r in records}) != records[0]["metadata"]["num_tracks"]:
        return False
    num_frames, vid = records[0]["metadata"]["num_frames"], records[0]["vid"]
    return all((out_dir / frame_file(vid, t)).is_file() for t in range(num_frames))


def synthesize(
    out_dir: str | os.PathLike,
    videos: int,
    seed: int,
    frames_per_video: tuple[int, int] = (24, 48),
    size: tuple[int, int] = (160, 120),
    *,
    config: SynthConfig | None = None,
    progress: bool = True,
) -> SynthSummary:
    """Write `videos` synthetic videos and their track records under `out_dir`, resuming a cut-off run.

    `config` sets everything else (objects per video, tracks per video, probabilities, photos); its
    `size`/`frames_per_video` are replaced by the arguments. Videos already complete on disk (frames
    and records) are kept; the annotation file is replaced atomically at the end, and records are
    appended to `.annotations.partial.jsonl` as videos finish so a killed run loses at most one video.
    The annotation file lists videos 0..videos-1 only: asking for fewer than before leaves the other
    frame folders on disk but out of the file.
    """
    start = time.perf_counter()
    if videos < 0 or seed < 0:
        raise ValueError("videos and seed must be >= 0")
    cfg = dataclasses.replace(config or SynthConfig(), size=tuple(size), frames_per_video=tuple(frames_per_video))
    cfg.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"version": VERSION, "seed": seed, **cfg.as_json()}
    config_path = out / "synth_config.json"
    if config_path.is_file():
        previous = json.loads(config_path.read_text())
        if previous != settings:
            changed = sorted(k for k in settings.keys() | previous.keys() if settings.get(k) != previous.get(k))
            raise ValueError(
                f"{out} holds synthetic data made with other settings ({', '.join(changed)} differ); "
                "use another --out folder or delete this one"
            )
    else:
        write_json_atomic(config_path, settings, sort_keys=True)

    annotations, partial = out / "annotations.jsonl", out / ".annotations.partial.jsonl"
    existing: dict[str, dict[str, dict[str, Any]]] = {}
    for row in _read_jsonl(annotations) + _read_jsonl(partial):
        existing.setdefault(row["vid"], {})[row["id"]] = row

    all_records: list[dict[str, Any]] = []
    generated = resumed = dropped = frame_count = 0
    with open(partial, "a", encoding="utf-8") as sink:
        for index in tqdm(range(videos), desc="synth", unit="video", disable=not progress):
            vid = f"synth-s{seed}-{index:06d}"
            done = list(existing.get(vid, {}).values())
            if _complete(done, out):
                all_records.extend(sorted(done, key=lambda r: r["metadata"]["object_index"]))
                resumed += 1
                frame_count += done[0]["metadata"]["num_frames"]
                continue
            plan = plan_video(seed, index, cfg)
            stats = []
            for t, (frame, st) in enumerate(render_frames(plan)):
                write_frame(out, vid, t, frame, cfg.jpeg_quality)
                stats.append(st)
            records, lost = track_records(plan, stats, cfg)
            sink.writelines(json.dumps(r) + "\n" for r in records)
            sink.flush()
            all_records.extend(records)
            generated += 1
            dropped += lost
            frame_count += plan.num_frames
    write_text_atomic(annotations, "".join(json.dumps(r) + "\n" for r in all_records))
    write_text_atomic(out / "grounding.jsonl", "".join(json.dumps(g) + "\n" for g in grounding_rows(all_records)))
    partial.unlink(missing_ok=True)
    flags = Counter(k for r in all_records for k, v in r["metadata"]["flags"].items() if v)
    return SynthSummary(
        out_dir=out,
        annotations=annotations,
        videos=videos,
        generated=generated,
        resumed=resumed,
        records=len(all_records),
        frames=frame_count,
        dropped_tracks=dropped,
        seconds=round(time.perf_counter() - start, 3),
        flags=dict(sorted(flags.items())),
    )
