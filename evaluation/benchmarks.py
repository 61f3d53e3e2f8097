"""Tracking benchmarks read from the layouts their authors ship, and tracker results in toolkit format.

Every reader returns a :class:`Benchmark`: its :class:`Sequence` s (ground truth as pixel
``x, y, w, h`` float arrays, NaN where the box is unknown) and the sequences it had to skip, each
with the reason, so one broken sequence in a 280-sequence benchmark is reported, not fatal. A root
that does not look like the benchmark at all raises :class:`BenchmarkError` naming the path and
what was expected.

Layouts (``root`` is what you pass):

* LaSOT: ``root/<class>/<class>-<n>/img/00000001.jpg``, ``groundtruth.txt`` (x,y,w,h comma
  separated), ``full_occlusion.txt`` and ``out_of_view.txt`` (one line of comma-separated 0/1).
  ``absent = full_occlusion | out_of_view`` (pytracking's ``target_visible`` negated). When
  ``root/testing_set.txt`` exists it selects the sequences (the 280-sequence test protocol).
* UAV123: ``root/anno/UAV123/<seq>.txt`` (NaN rows where the target is out of view) and frames
  ``root/data_seq/UAV123/<folder>/000001.jpg``. The annotation files define the sequences. The
  split sequences (``bird1_2`` ...) share their parent's folder (the name without ``_<k>``) and
  start at a frame from the benchmark's ``configSeqs.m``, kept in ``UAV123_START_FRAMES``; a
  sequence runs for as many frames as its annotation has rows. This keeps the 32 start frames in
  one small table instead of all 123 ranges. ``version="UAV20L"`` reads ``anno/UAV20L``.
* OTB: ``root/<Seq>/img/0001.jpg`` and ``groundtruth_rect.txt`` (comma, tab or space
  separated). As in the got10k toolkit, a folder with several non-empty ``groundtruth*.txt``
  (Jogging, Skating2) gives ``Seq.1``, ``Seq.2``; where ``img/`` holds more frames than the ground
  truth has rows the first rows' worth are used, except David, which starts at frame 300.
* GOT-10k: ``root/{val,test}/list.txt``, ``root/val/GOT-10k_Val_000001/00000001.jpg``,
  ``groundtruth.txt``, ``absence.label`` (one 0/1 a line), ``meta_info.ini`` (resolution). The
  test set's ground truth has only the first frame; the other rows are NaN.
* ElysiumTrack: JSON lines with ``id, vid, frames[], box[]`` (normalized x1,y1,x2,y2 per frame,
  ``null`` where unknown), ``frame_size [w, h]``, ``object_description``; frame paths relative to
  ``frame_root`` (default: the file's folder). Boxes become pixel x,y,w,h.

``frames=False`` skips listing image folders (scoring needs only ground truth); ``frame_paths``
is then empty.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from elysium.utils.atomic import write_text_atomic
from elysium.utils.paths import PathOutsideRootError, inside_root

BENCHMARKS: tuple[str, ...] = ("lasot", "uav123", "otb", "got10k", "elysiumtrack")

# First frame of each UAV123 sub-sequence that does not start at frame 1 (UAV123's configSeqs.m).
UAV123_START_FRAMES: dict[str, int] = {
    "bird1_2": 775, "bird1_3": 1573, "car1_2": 751, "car1_3": 1627, "car6_2": 487, "car6_3": 1807,
    "car6_4": 2953, "car6_5": 3925, "car8_2": 1357, "car16_2": 415, "group1_2": 1333, "group1_3": 2515,
    "group1_4": 3925, "group2_2": 907, "group2_3": 1771, "group3_2": 1567, "group3_3": 2827, "group3_4": 4369,
    "person2_2": 1189, "person4_2": 1501, "person5_2": 877, "person7_2": 1249, "person8_2": 1075,
    "person12_2": 601, "person14_2": 847, "person14_3": 1813, "person17_2": 1501, "person19_2": 1243,
    "person19_3": 2791, "truck4_2": 577, "uav1_2": 1555, "uav1_3": 2473,
}  # fmt: skip

# OTB sequences whose ground truth starts after the first image in img/ (got10k's OTB reader).
OTB_START_FRAMES: dict[str, int] = {"david": 300}

_SEPARATORS = re.compile(r"[,\s]+")
_SUBSEQUENCE = re.compile(r"_\d+$")


class BenchmarkError(ValueError):
    """A benchmark folder, annotation or result file that does not have the expected layout or content."""


@dataclass(frozen=True)
class Sequence:
    """One tracking sequence: frames, pixel x,y,w,h ground truth (NaN = unknown), absent flags."""

    name: str
    frame_paths: tuple[Path, ...]
    gt_boxes: np.ndarray
    absent: np.ndarray | None = None
    frame_size: tuple[int, int] | None = None
    benchmark: str = ""
    description: str | None = None

    def __len__(self) -> int:
        return len(self.gt_boxes)


@dataclass
class Benchmark:
    """The sequences read from one benchmark, and the ``(name, reason)`` of each one skipped."""

    name: str
    root: Path
    sequences: list[Sequence]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __iter__(self) -> Iterator[Sequence]:
        return iter(self.sequences)

    def __len__(self) -> int:
        return len(self.sequences)

    def names(self) -> list[str]:
        return [s.name for s in self.sequences]


# ---------------------------------------------------------------------------------------------------------
# Text files
# ---------------------------------------------------------------------------------------------------------


def read_boxes(path: str | os.PathLike[str]) -> np.ndarray:
    """An ``(N, 4)`` float array from a box file: one box a line, comma, tab or space separated, NaN allowed."""
    path = Path(path)
    rows: list[list[float]] = []
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            fields = [f for f in _SEPARATORS.split(text) if f]
            try:
                values = [float(f) for f in fields]
            except ValueError:
                raise BenchmarkError(f"{path}: line {number} is not numbers: {text[:60]!r}") from None
            if len(values) != 4:
                raise BenchmarkError(f"{path}: line {number} has {len(values)} values; expected 4 (x,y,w,h)")
            rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _read_flags(path: Path) -> np.ndarray:
    """0/1 flags separated by commas, spaces or newlines (LaSOT's one line, GOT-10k's one a line)."""
    text = path.read_text(encoding="utf-8-sig").strip()
    fields = [f for f in _SEPARATORS.split(text) if f]
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise BenchmarkError(f"{path}: expected 0/1 flags, found {text[:60]!r}") from None
    if any(v not in (0.0, 1.0) for v in values):
        raise BenchmarkError(f"{path}: expected 0/1 flags, found other values")
    return np.asarray(values, dtype=np.float64) > 0


def _list_jpgs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BenchmarkError(f"{folder}: image folder not found")
    return sorted(entry for entry in folder.iterdir() if entry.suffix.lower() == ".jpg")


def _frames_matching(folder: Path, count: int, start: int = 1) -> tuple[Path, ...]:
    """``count`` sorted jpgs of ``folder`` from the ``start``-th on, or an error saying how many there are."""
    images = _list_jpgs(folder)
    if len(images) < start - 1 + count:
        raise BenchmarkError(
            f"{folder}: {len(images)} images, but the ground truth needs {count} from image {start} on"
        )
    return tuple(images[start - 1 : start - 1 + count])


def _read_sequences(
    names: list[str], read_one: Callable[[str], Sequence]
) -> tuple[list[Sequence], list[tuple[str, str]]]:
    sequences: list[Sequence] = []
    skipped: list[tuple[str, str]] = []
    for name in names:
        try:
            sequences.append(read_one(name))
        except (BenchmarkError, OSError, UnicodeDecodeError) as error:
            skipped.append((name, str(error)))
    return sequences, skipped


def _require_dir(root: Path, what: str) -> Path:
    if not root.is_dir():
        raise BenchmarkError(f"{root}: not a folder; expected the {what} root")
    return root


# ---------------------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------------------


def read_lasot(root: str | os.PathLike[str], *, frames: bool = True, use_testing_set: bool = True) -> Benchmark:
    """LaSOT: the sequences named in ``testing_set.txt`` when present (and wanted), else every one found."""
    root = _require_dir(Path(root), "LaSOT")
    testing_set = root / "testing_set.txt"
    if use_testing_set and testing_set.is_file():
        names = [line.strip() for line in testing_set.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    else:
        names = [
            seq.name
            for cls in sorted(p for p in root.iterdir() if p.is_dir())
            for seq in sorted(p for p in cls.iterdir() if p.is_dir() and p.name.startswith(cls.name + "-"))
        ]
    if not names:
        raise BenchmarkError(f"{root}: no LaSOT sequences; expected <class>/<class>-<n>/groundtruth.txt")

    def read_one(name: str) -> Sequence:
        if "-" not in name:
            raise BenchmarkError(f"{name!r} is not a LaSOT sequence name (<class>-<n>)")
        folder = root / name.rsplit("-", 1)[0] / name
        gt_file = folder / "groundtruth.txt"
        if not gt_file.is_file():
            raise BenchmarkError(f"{gt_file}: not found")
        gt = read_boxes(gt_file)
        absent = np.zeros(len(gt), dtype=bool)
        for flag_name in ("full_occlusion.txt", "out_of_view.txt"):
            flags = _read_flags(folder / flag_name)
            if len(flags) != len(gt):
                raise BenchmarkError(f"{folder / flag_name}: {len(flags)} flags for {len(gt)} ground-truth rows")
            absent |= flags
        frame_paths = _frames_matching(folder / "img", len(gt)) if frames else ()
        nlp = folder / "nlp.txt"
        description = nlp.read_text(encoding="utf-8-sig").strip() if nlp.is_file() else None
        return Sequence(name, frame_paths, gt, absent, None, "lasot", description)

    sequences, skipped = _read_sequences(names, read_one)
    return Benchmark("lasot", root, sequences, skipped)


def read_uav123(root: str | os.PathLike[str], *, version: str = "UAV123", frames: bool = True) -> Benchmark:
    """UAV123 (or UAV20L): sequences from ``anno/<version>/*.txt``, frames from ``data_seq/UAV123``."""
    root = _require_dir(Path(root), "UAV123")
    version = version.upper()
    if version not in ("UAV123", "UAV20L"):
        raise BenchmarkError(f"unknown UAV123 version {version!r}; use UAV123 or UAV20L")
    anno_dir = root / "anno" / version
    if not anno_dir.is_dir():
        raise BenchmarkError(f"{anno_dir}: not found; expected UAV123's anno/{version}/<seq>.txt")
    names = sorted(p.stem for p in anno_dir.glob("*.txt"))
    if not names:
        raise BenchmarkError(f"{anno_dir}: no <seq>.txt annotation files")

    def read_one(name: str) -> Sequence:
        gt = read_boxes(anno_dir / f"{name}.txt")
        if len(gt) == 0:
            raise BenchmarkError(f"{anno_dir / (name + '.txt')}: empty")
        folder_name = _SUBSEQUENCE.sub("", name) if version == "UAV123" else name
        start = UAV123_START_FRAMES.get(name, 1) if version == "UAV123" else 1
        frame_paths: tuple[Path, ...] = ()
        if frames:
            folder = root / "data_seq" / "UAV123" / folder_name
            if not folder.is_dir():
                raise BenchmarkError(f"{folder}: image folder not found")
            wanted = [folder / f"{index:06d}.jpg" for index in range(start, start + len(gt))]
            present = {entry.name for entry in folder.iterdir()}
            missing = [p.name for p in wanted if p.name not in present]
            if missing:
                raise BenchmarkError(
                    f"{folder}: {len(missing)} of frames {wanted[0].name}..{wanted[-1].name} missing"
                    f" (e.g. {missing[0]})"
                )
            frame_paths = tuple(wanted)
        return Sequence(name, frame_paths, gt, None, None, "uav123")

    sequences, skipped = _read_sequences(names, read_one)
    return Benchmark("uav123", root, sequences, skipped)


def read_otb(root: str | os.PathLike[str], *, frames: bool = True) -> Benchmark:
    """OTB-2015 (every ``<Seq>/groundtruth*.txt`` under ``root``), named as the got10k toolkit names them."""
    root = _require_dir(Path(root), "OTB")
    anno_files: list[Path] = []
    empty: list[tuple[str, str]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for anno in sorted(folder.glob("groundtruth*.txt")):
            if anno.read_text(encoding="utf-8", errors="replace").strip():
                anno_files.append(anno)
            else:  # e.g. Human4's groundtruth_rect.1.txt
                empty.append((f"{folder.name}/{anno.name}", f"{anno}: empty annotation file"))
    if not anno_files:
        raise BenchmarkError(f"{root}: no OTB sequences; expected <Seq>/groundtruth_rect.txt and <Seq>/img/")
    folder_names = [a.parent.name for a in anno_files]
    names: list[str] = []
    for i, folder_name in enumerate(folder_names):
        if folder_names.count(folder_name) == 1:
            names.append(folder_name)
        else:
            names.append(f"{folder_name}.{folder_names[: i + 1].count(folder_name)}")
    files = dict(zip(names, anno_files))

    def read_one(name: str) -> Sequence:
        anno = files[name]
        gt = read_boxes(anno)
        start = OTB_START_FRAMES.get(anno.parent.name.lower(), 1)
        frame_paths = _frames_matching(anno.parent / "img", len(gt), start) if frames else ()
        return Sequence(name, frame_paths, gt, None, None, "otb")

    sequences, skipped = _read_sequences(names, read_one)
    return Benchmark("otb", root, sequences, empty + skipped)


_RESOLUTION = re.compile(r"^\s*resolution\s*:\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.MULTILINE)


def read_got10k(root: str | os.PathLike[str], *, subset: str = "val", frames: bool = True) -> Benchmark:
    """GOT-10k ``val`` or ``test`` from ``root/<subset>/list.txt``; test ground truth is the first frame only."""
    root = _require_dir(Path(root), "GOT-10k")
    if subset not in ("val", "test"):
        raise BenchmarkError(f"unknown GOT-10k subset {subset!r}; use val or test")
    list_file = root / subset / "list.txt"
    if not list_file.is_file():
        raise BenchmarkError(f"{list_file}: not found; expected GOT-10k's <root>/{subset}/list.txt")
    names = [line.strip() for line in list_file.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not names:
        raise BenchmarkError(f"{list_file}: lists no sequences")

    def read_one(name: str) -> Sequence:
        folder = root / subset / name
        if not folder.is_dir():
            raise BenchmarkError(f"{folder}: sequence folder not found")
        gt = read_boxes(folder / "groundtruth.txt")
        if len(gt) == 0:
            raise BenchmarkError(f"{folder / 'groundtruth.txt'}: empty")
        frame_paths: tuple[Path, ...] = ()
        if subset == "test":  # only the first box is given; the length comes from the frames
            frame_paths = tuple(_list_jpgs(folder))
            if not frame_paths:
                raise BenchmarkError(f"{folder}: no frames")
            unknown = np.full((len(frame_paths) - 1, 4), np.nan)
            gt = np.concatenate([gt[:1], unknown], axis=0)
        elif frames:
            frame_paths = _frames_matching(folder, len(gt))
        absent = None
        absence = folder / "absence.label"
        if absence.is_file():
            absent = _read_flags(absence)
            if len(absent) != len(gt):
                raise BenchmarkError(f"{absence}: {len(absent)} flags for {len(gt)} ground-truth rows")
        frame_size = None
        meta = folder / "meta_info.ini"
        if meta.is_file():
            match = _RESOLUTION.search(meta.read_text(encoding="utf-8", errors="replace"))
            frame_size = (int(match.group(1)), int(match.group(2))) if match else None
        return Sequence(name, frame_paths, gt, absent, frame_size, "got10k")

    sequences, skipped = _read_sequences(names, read_one)
    return Benchmark("got10k", root, sequences, skipped)


def _elysiumtrack_sequence(record: Any, frame_root: Path) -> Sequence:
    if not isinstance(record, dict):
        raise BenchmarkError("record is not a JSON object")
    missing = [key for key in ("id", "frames", "box", "frame_size") if key not in record]
    if missing:
        raise BenchmarkError(f"record lacks {', '.join(missing)}")
    name = str(record["id"])
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise BenchmarkError(f"id {name!r} cannot name a result file")
    frame_list, boxes, size = record["frames"], record["box"], record["frame_size"]
    if not isinstance(frame_list, list) or not frame_list or not all(isinstance(f, str) for f in frame_list):
        raise BenchmarkError("frames must be a non-empty list of paths")
    if not isinstance(boxes, list) or len(boxes) != len(frame_list):
        count = len(boxes) if isinstance(boxes, list) else "no"
        raise BenchmarkError(f"{count} boxes for {len(frame_list)} frames")
    try:
        width, height = (float(v) for v in size)
    except (TypeError, ValueError):
        raise BenchmarkError(f"frame_size {size!r} is not [w, h]") from None
    if not (width > 0 and height > 0):
        raise BenchmarkError(f"frame_size {size!r} is not positive")
    gt = np.full((len(boxes), 4), np.nan)
    for index, box in enumerate(boxes):
        if box is None:
            continue
        try:
            x1, y1, x2, y2 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise BenchmarkError(f"box {index + 1} {box!r} is not four numbers x1,y1,x2,y2") from None
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise BenchmarkError(f"box {index + 1} {box!r} is not finite")
        gt[index] = (x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height)
    try:
        frame_paths = tuple(inside_root(frame_root, f) for f in frame_list)
    except PathOutsideRootError as error:
        raise BenchmarkError(str(error)) from None
    description = record.get("object_description")
    return Sequence(name, frame_paths, gt, None, (round(width), round(height)), "elysiumtrack", description)


def read_elysiumtrack(path: str | os.PathLike[str], *, frame_root: str | os.PathLike[str] | None = None) -> Benchmark:
    """ElysiumTrack-1M records (JSON lines) as sequences named by their ``id``; bad lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: not a file; expected ElysiumTrack JSON lines")
    base = Path(frame_root) if frame_root is not None else path.parent
    sequences: list[Sequence] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            label = f"line {number}"
            try:
                record = json.loads(line)
                if isinstance(record, dict) and "id" in record:
                    label = str(record["id"])
                sequence = _elysiumtrack_sequence(record, base)
            except json.JSONDecodeError as error:
                skipped.append((label, f"{path}: line {number}: not JSON ({error.msg})"))
                continue
            except BenchmarkError as error:
                skipped.append((label, f"{path}: line {number}: {error}"))
                continue
            if sequence.name in seen:
                skipped.append((label, f"{path}: line {number}: id {sequence.name!r} repeats an earlier record"))
                continue
            seen.add(sequence.name)
            sequences.append(sequence)
    if not sequences and not skipped:
        raise BenchmarkError(f"{path}: no records")
    return Benchmark("elysiumtrack", path, sequences, skipped)


def load_benchmark(
    name: str, root: str | os.PathLike[str], *, subset: str | None = None, frames: bool = True
) -> Benchmark:
    """Read benchmark ``name`` (one of ``BENCHMARKS``); ``subset`` picks LaSOT ``test``/``all``,
    GOT-10k ``val``/``test`` or UAV ``UAV123``/``UAV20L``."""
    if name == "lasot":
        if subset not in (None, "test", "all"):
            raise BenchmarkError(f"unknown LaSOT subset {subset!r}; use test or all")
        return read_lasot(root, frames=frames, use_testing_set=subset != "all")
    if name == "uav123":
        return read_uav123(root, version=subset or "UAV123", frames=frames)
    if name == "otb":
        return read_otb(root, frames=frames)
    if name == "got10k":
        return read_got10k(root, subset=subset or "val", frames=frames)
    if name == "elysiumtrack":
        return read_elysiumtrack(root)
    raise BenchmarkError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")


# ---------------------------------------------------------------------------------------------------------
# Results in toolkit format: <dir>/<sequence>.txt, one x,y,w,h line per frame
# ---------------------------------------------------------------------------------------------------------


def _check_result_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise BenchmarkError(f"{name!r} cannot name a result file")


def write_results(directory: str | os.PathLike[str], name: str, boxes_xywh: Any) -> Path:
    """Write ``<directory>/<name>.txt`` (``x,y,w,h`` per line, exact float text) atomically; returns its path."""
    _check_result_name(name)
    boxes = np.asarray(boxes_xywh, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise BenchmarkError(f"results for {name!r} must be an (N, 4) array of x,y,w,h, got shape {boxes.shape}")
    text = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in boxes)
    return write_text_atomic(Path(directory) / f"{name}.txt", text)


def results_path(directory: str | os.PathLike[str], name: str) -> Path:
    """Where the results of sequence ``name`` are: ``<dir>/<name>.txt``, or the got10k toolkit's
    ``<dir>/<name>/<name>_001.txt`` when only that exists."""
    _check_result_name(name)
    flat = Path(directory) / f"{name}.txt"
    got10k_style = Path(directory) / name / f"{name}_001.txt"
    return got10k_style if not flat.exists() and got10k_style.is_file() else flat


def read_results(directory: str | os.PathLike[str], name: str) -> np.ndarray:
    """The ``(N, 4)`` boxes of sequence ``name``; ``FileNotFoundError`` when there is no result file."""
    path = results_path(directory, name)
    if not path.is_file():
        raise FileNotFoundError(f"no results for {name}: {path}")
    return read_boxes(path)
