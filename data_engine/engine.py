"""`elysium data build`: the funnel as a `datasets` map over videos, resumable, one share of shards per process.

Layout under `--out`:

    frames/<vid>/000000.jpg ...   JPEG frames of every video that gave a trajectory (what `FrameStore` reads)
    shards/shard-00012.jsonl      the records of the shard's videos, written atomically
    shards/shard-00012.json       the shard's per-video funnel counts and problems; written last: a shard with
                                  this file is finished, and a rerun skips it (the frames are rewritten otherwise)
    annotations.jsonl             every record, in video order (ElysiumTrack-1M JSON lines)
    data/train-00000-of-00001.parquet   the same records as a `datasets` Parquet file (`push_to_hub` ready)
    summary.json                  the funnel: videos read, chunks found, pairs kept at each filter, trajectories
    preview/<vid>.mp4             `--preview N`: annotated clips (detector boxes, tracks, kept or dropped and why)

Processes: shards (blocks of `--shard-size` videos) are dealt out by `accelerate`'s
`PartialState.split_between_processes`; the main process merges them once every process is done. Nothing else
coordinates the processes, so machines must share `--out` (a shared file system).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from elysium.processing.boxes import normalize_box
from elysium.utils.atomic import write_json_atomic, write_text_atomic
from elysium.utils.jsonl import numbered_jsonl_lines
from elysium.utils.track_folder import frame_file, write_frame

from .chunks import CHUNK_REASONS, Chunk, Chunker, given_chunks
from .detect import Detection, Detector
from .filters import (
    OUTSIDE_FRAME,
    TRACK_REASONS,
    FunnelThresholds,
    agreement_problem,
    confidence_problem,
    drift_problem,
)
from .track import Tracker

SOURCE = "elysium-data-engine"
# Per-video reasons a video gives nothing (counted, never fatal).
NO_CAPTION = "no_caption"
UNREADABLE_VIDEO = "unreadable_video"
TOO_SHORT = "too_few_frames"
DETECTOR_FAILED = "detector_failed"
TRACKER_FAILED = "tracker_failed"
NOT_UTF8 = "caption_line_not_utf8"  # a line of the captions file that is not UTF-8
VIDEO_REASONS = (NO_CAPTION, UNREADABLE_VIDEO, TOO_SHORT, DETECTOR_FAILED, TRACKER_FAILED, NOT_UTF8)
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg", ".ts")
LOW_SCORE = "detector_score_below_threshold"
# The funnel, in order: what the summary prints.
FUNNEL = (
    "videos",
    "videos_read",
    "chunks_found",
    "chunks_kept",
    "pairs_above_detector_threshold",
    "trajectories_tracked",
    "kept_tracker_confidence",
    "kept_kalman_drift",
    "kept_iou_agreement",
    "trajectories_written",
)


@dataclass
class BuildConfig:
    """Everything `build` needs besides the components; saved in `summary.json`."""

    out: Path
    shard_size: int = 16
    batch_videos: int = 4
    stride: int = 1
    max_frames: int | None = None
    min_frames: int = 8
    jpeg_quality: int = 90
    preview: int = 0
    source: str = SOURCE
    thresholds: FunnelThresholds = field(default_factory=FunnelThresholds)
    progress: bool = True


@dataclass
class VideoResult:
    """What one video gave: records, counts (funnel and reasons), and what a preview draws."""

    vid: str
    problem: str = ""
    counts: Counter = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)


def read_inputs(captions: str | os.PathLike, videos_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The captions file (JSON lines: `video` (a path, relative to `videos_dir` when given), `caption`, optional
    `id` and `chunks`) -> rows for the map. A line that is not JSON, or has no video, becomes a row with a problem
    (`caption_line_not_utf8` for one that is not UTF-8; a byte-order mark is dropped). With `videos_dir`, its
    videos (files or frame folders) without a caption line are rows with `no_caption`."""
    rows: list[dict[str, Any]] = []
    root = Path(videos_dir) if videos_dir is not None else None
    seen: set[str] = set()
    for number, line in numbered_jsonl_lines(captions):
        if line is None:
            rows.append(_row(f"line-{number}", "", "", None, NOT_UTF8))
            continue
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            video = str(raw["video"])
        except (json.JSONDecodeError, KeyError, TypeError):
            rows.append(_row(f"line-{number}", "", "", None, NO_CAPTION))
            continue
        path = Path(video) if root is None or Path(video).is_absolute() else root / video
        vid = str(raw.get("id") or Path(video).stem)
        seen.add(str(path.resolve()))
        chunks = raw.get("chunks")
        rows.append(_row(vid, str(path), str(raw.get("caption") or ""), chunks, ""))
    if root is not None and root.is_dir():
        for path in sorted(root.iterdir()):
            is_video = path.is_dir() or path.suffix.lower() in VIDEO_EXTENSIONS
            if is_video and str(path.resolve()) not in seen and not path.name.startswith("."):
                rows.append(_row(path.stem, str(path), "", None, NO_CAPTION))
    ids = Counter(row["vid"] for row in rows)
    for row in rows:  # ids name frame folders and records: they must be unique
        if ids[row["vid"]] > 1:
            row["vid"] = f"{row['vid']}-{hashlib.sha1(row['video'].encode()).hexdigest()[:8]}"  # same in every process
    return rows


def _row(vid: str, video: str, caption: str, chunks: Any, problem: str) -> dict[str, Any]:
    return {
        "vid": vid,
        "video": video,
        "caption": caption,
        "chunks": json.dumps(chunks if isinstance(chunks, list) else None),
        "problem": problem,
    }


class Funnel:
    """Runs the components on a batch of videos (the body of the `datasets` map)."""

    def __init__(
        self, chunker: Chunker | None, detector: Detector, tracker: Tracker, config: BuildConfig, preview_vids=()
    ) -> None:
        self.chunker, self.detector, self.tracker, self.config = chunker, detector, tracker, config
        self.preview_vids = set(preview_vids)

    # -- chunks ---------------------------------------------------------------------------------------------------
    def _chunks(self, rows: Sequence[dict[str, Any]], readable: Sequence[int]) -> list[list[Chunk]]:
        """Chunks of the `readable` rows' captions: given ones as they are, the others parsed in one batch."""
        given = [json.loads(row["chunks"]) for row in rows]
        to_parse = [i for i in readable if given[i] is None]
        parsed: dict[int, list[Chunk]] = {}
        if to_parse:
            if self.chunker is None:
                raise ValueError("captions without `chunks` need a spaCy model (--spacy-model)")
            for i, chunks in zip(to_parse, self.chunker([rows[i]["caption"] for i in to_parse])):
                parsed[i] = chunks
        return [given_chunks(g) if g is not None and i in readable else parsed.get(i, []) for i, g in enumerate(given)]

    # -- one batch ------------------------------------------------------------------------------------------------
    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        from elysium.processing.video import VideoError, read_video

        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        results = [VideoResult(row["vid"], row["problem"]) for row in rows]
        for row, result in zip(rows, results):
            result.counts["videos"] += 1
            if not row["problem"] and not row["caption"].strip():
                result.problem = NO_CAPTION
        videos: dict[int, Any] = {}
        for i, (row, result) in enumerate(zip(rows, results)):
            if result.problem:
                continue
            try:
                video = read_video(
                    row["video"], size=None, stride=self.config.stride, max_frames=self.config.max_frames
                )
            except (VideoError, OSError):
                result.problem = UNREADABLE_VIDEO
                continue
            if len(video) < self.config.min_frames:
                result.problem = TOO_SHORT
                continue
            videos[i] = video
            result.counts["videos_read"] += 1
        chunk_lists = self._chunks(rows, list(videos))

        # Detector: first, middle and last frame of every readable video, all its kept chunks as queries.
        frames, queries, keys, owners = [], [], [], []
        kept_chunks: dict[int, list[Chunk]] = {}
        for i in videos:
            chunks = chunk_lists[i]
            results[i].counts["chunks_found"] += len(chunks)
            for chunk in chunks:
                if chunk.problem:
                    results[i].counts[f"chunk_dropped_{chunk.problem}"] += 1
            kept_chunks[i] = [c for c in chunks if not c.problem]
            results[i].counts["chunks_kept"] += len(kept_chunks[i])
            if not kept_chunks[i]:
                continue
            n = len(videos[i])
            for t in _probe_frames(n):
                frames.append(videos[i].frames[t])
                queries.append([c.text for c in kept_chunks[i]])
                keys.append((rows[i]["vid"], int(videos[i].indices[t])))
                owners.append((i, t))
        detections: dict[tuple[int, int], list[Detection | None]] = {}
        if frames:
            try:
                found_all = self.detector(frames, queries, keys)
            except Exception as error:  # e.g. out of memory on a batch of huge frames: count, keep going
                found_all = None
                failed = {i for i, _ in owners}
                for i in failed:
                    results[i].problem = f"{DETECTOR_FAILED}: {type(error).__name__}"
                    kept_chunks[i] = []
            if found_all is not None:
                for owner, found in zip(owners, found_all):
                    detections[owner] = found

        out: dict[str, list[Any]] = {"vid": [], "problem": [], "counts": [], "records": []}
        for i, (row, result) in enumerate(zip(rows, results)):
            if i in videos and kept_chunks.get(i):
                self._video(row, videos[i], kept_chunks[i], detections, i, result)
            out["vid"].append(result.vid)
            out["problem"].append(result.problem)
            out["counts"].append(json.dumps(dict(result.counts)))
            out["records"].append(json.dumps(result.records))
        return out

    def _video(self, row, video, chunks: list[Chunk], detections, i: int, result: VideoResult) -> None:
        th = self.config.thresholds
        n = len(video)
        h, w = video.frames.shape[1:3]
        probes = _probe_frames(n)
        pairs = []  # (chunk index, {frame: box}, scores)
        for c in range(len(chunks)):
            found = [_clip(detections[(i, t)][c], w, h) for t in probes]
            scores = [d.score if d is not None else 0.0 for d in found]
            if all(d is not None and d.score > th.detector for d in found):
                pairs.append((c, {t: d.box for t, d in zip(probes, found)}, scores))
            else:
                result.counts[f"pair_dropped_{LOW_SCORE}"] += 1
        result.counts["pairs_above_detector_threshold"] += len(pairs)
        if not pairs:
            self._maybe_preview(row, video, chunks, [], detections, i)
            return
        try:
            trajectories = self.tracker(video.frames, [p[1][0] for p in pairs], row["vid"])
        except Exception as error:  # e.g. out of memory on a long video: count it (a kill is not an Exception)
            result.problem = f"{TRACKER_FAILED}: {type(error).__name__}"
            return
        result.counts["trajectories_tracked"] += len(trajectories)
        verdicts = []
        for (c, boxes_at, scores), trajectory in zip(pairs, trajectories):
            problem = confidence_problem(trajectory.confidence, th.tracker)
            worst_nis, ious = None, {}
            if problem is None:
                result.counts["kept_tracker_confidence"] += 1
                problem, worst_nis = drift_problem(trajectory.boxes, th.kalman_gate)
            if problem is None:
                result.counts["kept_kalman_drift"] += 1
                problem, ious = agreement_problem(trajectory.boxes, {t: boxes_at[t] for t in probes[1:]}, th.iou)
            if problem is None:
                result.counts["kept_iou_agreement"] += 1
                record = self._record(row, video, chunks[c], trajectory, scores, worst_nis, ious, len(result.records))
                if record is None:
                    problem = OUTSIDE_FRAME
                else:
                    result.records.append(record)
            if problem:
                result.counts[f"trajectory_dropped_{problem}"] += 1
            verdicts.append((chunks[c], boxes_at, trajectory, problem))
        result.counts["trajectories_written"] += len(result.records)
        if result.records:
            self._write_frames(video, row["vid"])
        self._maybe_preview(row, video, chunks, verdicts, detections, i)

    def _record(self, row, video, chunk: Chunk, trajectory, scores, worst_nis, ious, k: int) -> dict[str, Any] | None:
        h, w = video.frames.shape[1:3]
        boxes = []
        for box in trajectory.boxes:
            x1, y1, x2, y2 = _cut_to(normalize_box([float(v) for v in box], (w, h)), 1.0, 1.0)
            if not (x2 > x1 and y2 > y1):
                return None
            boxes.append([round(x1, 6), round(y1, 6), round(x2, 6), round(y2, 6)])
        vid = row["vid"]
        return {
            "source": self.config.source,
            "id": f"{vid}-{k}",
            "vid": vid,
            "metadata": {
                "video": row["video"],
                "caption": row["caption"],
                "frame_indices": [int(t) for t in video.indices],
                "fps": float(video.fps),
                "detector": getattr(self.detector, "name", ""),
                "tracker": getattr(self.tracker, "name", ""),
                "detector_scores": [round(float(s), 4) for s in scores],
                "tracker_confidence_min": round(float(np.min(trajectory.confidence)), 4),
                "kalman_nis_max": round(float(worst_nis or 0.0), 4),
                "iou_middle": round(float(list(ious.values())[0]), 4),
                "iou_last": round(float(list(ious.values())[-1]), 4),
            },
            "frames": [frame_file(vid, t) for t in range(len(video))],
            "object_class": chunk.text,
            "box": boxes,
            "object_description": chunk.description,
            "frame_size": [int(w), int(h)],
        }

    def _write_frames(self, video, vid: str) -> None:
        for t, frame in enumerate(video.frames):
            write_frame(self.config.out, vid, t, frame, self.config.jpeg_quality)

    def _maybe_preview(self, row, video, chunks, verdicts, detections, i: int) -> None:
        if row["vid"] not in self.preview_vids:
            return
        from .preview import write_preview

        probes = _probe_frames(len(video))
        found = {t: detections.get((i, t), []) for t in probes}
        path = self.config.out / "preview" / f"{row['vid']}.mp4"
        write_preview(path, video, chunks, found, verdicts, self.config.thresholds.detector)


def _probe_frames(n: int) -> list[int]:
    """The paper's first, middle and last frames."""
    return [0, n // 2, n - 1]


def _clip(detection: Detection | None, w: int, h: int) -> Detection | None:
    """A detection clipped to the frame; None when nothing of it is inside (OWLv2 boxes can reach its padding)."""
    if detection is None:
        return None
    x1, y1, x2, y2 = _cut_to(detection.box, w, h)
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return Detection((x1, y1, x2, y2), detection.score)


def _cut_to(box: Sequence[float], w: float, h: float) -> tuple[Any, Any, Any, Any]:
    """`[x1, y1, x2, y2]` with x cut to 0..w and y to 0..h (a NaN stays NaN)."""
    x1, y1, x2, y2 = box
    return min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h)


# ----------------------------------------------------------------------------------------------------------------
# shards, resume, merge


def shard_path(out: Path, index: int) -> Path:
    return out / "shards" / f"shard-{index:05d}"


def build(
    rows: list[dict[str, Any]],
    chunker: Chunker | None,
    detector: Detector,
    tracker: Tracker,
    config: BuildConfig,
    state: Any = None,
) -> dict[str, Any] | None:
    """Run the funnel over `rows` (from `read_inputs`) and write the dataset; returns the summary on the main
    process (None on the others). Finished shards are skipped, so rerunning the same command resumes."""
    import datasets
    from accelerate import PartialState
    from tqdm.auto import tqdm

    state = state or PartialState()
    out = config.out
    (out / "shards").mkdir(parents=True, exist_ok=True)
    num_shards = max(1, -(-len(rows) // config.shard_size))
    preview_vids = [row["vid"] for row in rows[: config.preview]]
    funnel = Funnel(chunker, detector, tracker, config, preview_vids)
    start = time.perf_counter()
    skipped = done_now = 0
    with state.split_between_processes(list(range(num_shards))) as mine:
        todo = [s for s in mine if not shard_path(out, s).with_suffix(".json").is_file()]
        skipped = len(mine) - len(todo)
        total = sum(len(rows[s * config.shard_size : (s + 1) * config.shard_size]) for s in todo)
        bar = tqdm(total=total, desc=f"build [{state.process_index}]", unit="video", disable=not config.progress)
        progress_was = datasets.utils.logging.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # our bar counts videos across shards
        try:
            for s in todo:
                shard_rows = rows[s * config.shard_size : (s + 1) * config.shard_size]
                # new_fingerprint: otherwise `datasets` hashes the function, i.e. pickles the models in it
                mapped = datasets.Dataset.from_list(shard_rows).map(
                    funnel,
                    batched=True,
                    batch_size=config.batch_videos,
                    remove_columns=list(shard_rows[0]),
                    new_fingerprint=f"elysium-data-build-shard-{s}",
                    keep_in_memory=True,
                )
                _write_shard(out, s, mapped)
                done_now += 1
                bar.update(len(shard_rows))
        finally:
            if progress_was:
                datasets.enable_progress_bars()
            bar.close()
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    summary = merge(out, num_shards, config)
    summary["run"] = {
        "processes": state.num_processes,
        "shards": num_shards,
        "shards_skipped_as_done": skipped,
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(out / "summary.json", summary)
    return summary


def _write_shard(out: Path, index: int, mapped: Any) -> None:
    """Records first, then the counts file that marks the shard done (each atomically)."""
    records = [r for rows in mapped["records"] for r in json.loads(rows)]
    base = shard_path(out, index)
    write_text_atomic(base.with_suffix(".jsonl"), "".join(json.dumps(r) + "\n" for r in records))
    videos = [
        {"vid": v, "problem": p, "counts": json.loads(c)}
        for v, p, c in zip(mapped["vid"], mapped["problem"], mapped["counts"])
    ]
    write_json_atomic(base.with_suffix(".json"), {"videos": videos, "records": len(records)})


def merge(out: Path, num_shards: int, config: BuildConfig) -> dict[str, Any]:
    """Every finished shard -> `annotations.jsonl`, the Parquet file and the funnel summary. Refuses to write a
    partial dataset: missing shards are named (rerun the command to finish them)."""
    import datasets

    missing = [s for s in range(num_shards) if not shard_path(out, s).with_suffix(".json").is_file()]
    if missing:
        raise RuntimeError(
            f"{len(missing)} of {num_shards} shards are not finished ({', '.join(map(str, missing[:10]))}...); "
            "rerun the same command to finish them (finished shards are skipped)"
        )
    counts: Counter = Counter()
    bad: Counter = Counter()
    records: list[dict[str, Any]] = []
    for s in range(num_shards):
        base = shard_path(out, s)
        status = json.loads(base.with_suffix(".json").read_text())
        for video in status["videos"]:
            counts.update(video["counts"])
            if video["problem"]:
                bad[video["problem"]] += 1
        with open(base.with_suffix(".jsonl"), encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    ids = Counter(r["id"] for r in records)
    repeated = [i for i, n in ids.items() if n > 1]
    if repeated:
        raise RuntimeError(f"records written twice: {repeated[:5]}; delete {out / 'shards'} and rebuild")
    write_text_atomic(out / "annotations.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    parquet = out / "data" / "train-00000-of-00001.parquet"
    parquet.parent.mkdir(parents=True, exist_ok=True)
    if records:
        tmp = parquet.with_name(f".{parquet.name}.tmp")
        datasets.Dataset.from_list(records).to_parquet(str(tmp))
        os.replace(tmp, parquet)
    funnel = {key: int(counts.get(key, 0)) for key in FUNNEL}
    funnel["trajectories_written"] = len(records)
    dropped = {
        "chunks": {r: int(counts.get(f"chunk_dropped_{r}", 0)) for r in CHUNK_REASONS},
        "pairs": {LOW_SCORE: int(counts.get(f"pair_dropped_{LOW_SCORE}", 0))},
        "trajectories": {r: int(counts.get(f"trajectory_dropped_{r}", 0)) for r in TRACK_REASONS},
        "videos": dict(sorted(bad.items())),
    }
    return {
        "funnel": funnel,
        "dropped": dropped,
        "thresholds": dataclasses.asdict(config.thresholds),
        "outputs": {
            "annotations": str(out / "annotations.jsonl"),
            "parquet": str(parquet) if records else None,
            "frames_root": str(out),
        },
    }
