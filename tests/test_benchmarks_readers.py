"""Benchmark readers on small trees laid out like each benchmark, result-file IO, and how each protocol scores
the frames the benchmarks flag (LaSOT absent frames, UAV123 NaN rows, GOT-10k absence.label)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from elysium.evaluation.benchmarks import (
    BenchmarkError,
    load_benchmark,
    read_elysiumtrack,
    read_got10k,
    read_lasot,
    read_otb,
    read_results,
    read_uav123,
    write_results,
)
from elysium.evaluation.ope import score_dataset, score_sequence


@pytest.fixture(scope="module")
def jpg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_frames(folder: Path, names: list[str], jpg: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(jpg)


def write_rows(path: Path, rows, sep: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(sep.join(str(v) for v in row) + "\n" for row in rows))


# ----------------------------------------------------------------------------------------------- LaSOT

LASOT_GT = [[10, 10, 20, 20], [12, 10, 20, 20], [0, 0, 0, 0], [14, 10, 20, 20], [16, 10, 20, 20]]


def make_lasot(root: Path, jpg: bytes) -> None:
    seq = root / "airplane" / "airplane-1"
    write_rows(seq / "groundtruth.txt", LASOT_GT)
    (seq / "out_of_view.txt").write_text("0,0,1,0,0\n")  # frame 3: out of view (box 0,0,0,0)
    (seq / "full_occlusion.txt").write_text("0,0,0,1,0\n")  # frame 4: fully occluded (box still given)
    (seq / "nlp.txt").write_text("white airplane taking off\n")
    write_frames(seq / "img", [f"{i:08d}.jpg" for i in range(1, 6)], jpg)

    bad = root / "bird" / "bird-3"  # a ground-truth line with three values
    write_rows(bad / "groundtruth.txt", [[1, 2, 3, 4], [1, 2, 3]])
    (bad / "out_of_view.txt").write_text("0,0\n")
    (bad / "full_occlusion.txt").write_text("0,0\n")

    short = root / "bird" / "bird-4"  # flags do not cover every frame
    write_rows(short / "groundtruth.txt", [[1, 2, 3, 4]] * 3)
    (short / "out_of_view.txt").write_text("0,0\n")
    (short / "full_occlusion.txt").write_text("0,0,0\n")
    write_frames(short / "img", [f"{i:08d}.jpg" for i in range(1, 4)], jpg)


def test_lasot_reader(tmp_path, jpg):
    make_lasot(tmp_path, jpg)
    benchmark = read_lasot(tmp_path)
    assert benchmark.names() == ["airplane-1"]
    seq = benchmark.sequences[0]
    np.testing.assert_array_equal(seq.gt_boxes, np.array(LASOT_GT, float))
    np.testing.assert_array_equal(seq.absent, [False, False, True, True, False])
    assert [p.name for p in seq.frame_paths] == [f"{i:08d}.jpg" for i in range(1, 6)]
    assert seq.frame_paths[0].parent == tmp_path / "airplane" / "airplane-1" / "img"
    assert seq.description == "white airplane taking off" and seq.benchmark == "lasot"
    reasons = dict(benchmark.skipped)
    assert set(reasons) == {"bird-3", "bird-4"}
    assert "groundtruth.txt: line 2 has 3 values" in reasons["bird-3"]
    assert "out_of_view.txt: 2 flags for 3 ground-truth rows" in reasons["bird-4"]


def test_lasot_testing_set_selects_and_reports_missing(tmp_path, jpg):
    make_lasot(tmp_path, jpg)
    (tmp_path / "testing_set.txt").write_text("airplane-1\ncat-9\n")
    benchmark = read_lasot(tmp_path)
    assert benchmark.names() == ["airplane-1"]
    assert [name for name, _ in benchmark.skipped] == ["cat-9"]
    assert "cat-9" in benchmark.skipped[0][1] and "groundtruth.txt: not found" in benchmark.skipped[0][1]
    # "all" ignores the list
    assert set(load_benchmark("lasot", tmp_path, subset="all").names()) == {"airplane-1"}
    assert {n for n, _ in load_benchmark("lasot", tmp_path, subset="all").skipped} == {"bird-3", "bird-4"}


def test_lasot_absent_frames_by_protocol(tmp_path, jpg):
    """A tracker that outputs the ground truth everywhere, absent frames included."""
    make_lasot(tmp_path, jpg)
    seq = read_lasot(tmp_path, frames=False).sequences[0]
    assert seq.frame_paths == ()
    write_results(tmp_path / "results", seq.name, seq.gt_boxes)
    pred = read_results(tmp_path / "results", seq.name)
    # pytracking (LaSOT): frames 3 and 4 are not visible: they fail every measure and stay in the
    # denominator; the other 3 frames have IoU 1 (> every threshold but 1.0), errors 0
    pt = score_sequence(pred, seq.gt_boxes, "pytracking", seq.absent, benchmark="lasot")
    assert pt.success_auc == pytest.approx(20 * (3 / 5) / 21)
    assert pt.precision_20px == pytest.approx(3 / 5) and pt.norm_precision == pytest.approx(3 / 5)
    # got10k ignores the flags: frame 4 (occluded, box given) counts as a hit; frame 3's 0x0 box has
    # IoU 0 but center error 0, so it fails success and passes precision
    g = score_sequence(pred, seq.gt_boxes, "got10k", seq.absent)
    assert g.success_auc == pytest.approx(20 * (4 / 5) / 21, abs=1e-6)
    assert g.precision_20px == pytest.approx(1.0) and g.norm_precision == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------- UAV123


def make_uav(root: Path, jpg: bytes) -> None:
    anno = root / "anno" / "UAV123"
    anno.mkdir(parents=True)
    # a sub-sequence of bird1 starting at frame 775, with an out-of-view NaN row as UAV123 writes it
    (anno / "bird1_2.txt").write_text("10,10,20,20\nNaN,NaN,NaN,NaN\n12,12,20,20\n14,14,20,20\n")
    (anno / "uav2.txt").write_text("1,1,5,5\n2,2,5,5\n")
    (anno / "car1_s.txt").write_text("1,1,5,5\n")  # its folder is missing
    (anno / "att").mkdir()  # UAV123 keeps attribute files in a sub-folder; not sequences
    (anno / "att" / "uav2.txt").write_text("0,1,0\n")
    write_frames(root / "data_seq" / "UAV123" / "bird1", [f"{i:06d}.jpg" for i in (1, 2, 775, 776, 777, 778)], jpg)
    write_frames(root / "data_seq" / "UAV123" / "uav2", ["000001.jpg", "000002.jpg"], jpg)


def test_uav123_reader_sub_sequences_and_nan_rows(tmp_path, jpg):
    make_uav(tmp_path, jpg)
    benchmark = read_uav123(tmp_path)
    assert benchmark.names() == ["bird1_2", "uav2"]
    bird = benchmark.sequences[0]
    assert [p.name for p in bird.frame_paths] == ["000775.jpg", "000776.jpg", "000777.jpg", "000778.jpg"]
    assert bird.frame_paths[0].parent.name == "bird1"
    assert np.isnan(bird.gt_boxes[1]).all() and not np.isnan(bird.gt_boxes[[0, 2, 3]]).any()
    assert bird.absent is None
    assert benchmark.skipped[0][0] == "car1_s" and "car1_s: image folder not found" in benchmark.skipped[0][1]


def test_uav123_missing_frames_are_skipped(tmp_path, jpg):
    make_uav(tmp_path, jpg)
    (tmp_path / "data_seq" / "UAV123" / "bird1" / "000777.jpg").unlink()
    benchmark = read_uav123(tmp_path)
    reasons = dict(benchmark.skipped)
    assert "1 of frames 000775.jpg..000778.jpg missing (e.g. 000777.jpg)" in reasons["bird1_2"]
    # scoring needs no frames
    assert read_uav123(tmp_path, frames=False).names() == ["bird1_2", "car1_s", "uav2"]


def test_uav123_nan_rows_by_protocol(tmp_path, jpg):
    make_uav(tmp_path, jpg)
    bird = read_uav123(tmp_path).sequences[0]
    pred = bird.gt_boxes.copy()
    pred[1] = [0, 0, 5, 5]  # anything, on the NaN frame
    pred[3] = [44, 14, 20, 20]  # 30 px off: IoU 0, normalized error 1.5
    # got10k drops the NaN frame: 3 frames, two perfect
    g = score_sequence(pred, bird.gt_boxes, "got10k")
    assert g.frames == 3
    assert g.success_auc == pytest.approx(20 * (2 / 3) / 21, abs=1e-6)
    assert g.precision_20px == pytest.approx(2 / 3) and g.norm_precision == pytest.approx(2 / 3)
    # pytracking keeps it: a failure for success, but center error -1 (UAV) and normalized -1 pass
    pt = score_sequence(pred, bird.gt_boxes, "pytracking", benchmark=bird.benchmark)
    assert pt.frames == 4
    assert pt.success_auc == pytest.approx(20 * (2 / 4) / 21)
    assert pt.precision_20px == pytest.approx(3 / 4) and pt.norm_precision == pytest.approx(3 / 4)


# ----------------------------------------------------------------------------------------------- OTB


def test_otb_reader_separators_multi_target_and_start_frames(tmp_path, jpg):
    write_rows(tmp_path / "Basketball" / "groundtruth_rect.txt", [[198, 214, 34, 81], [197, 214, 34, 81]], "\t")
    write_frames(tmp_path / "Basketball" / "img", ["0001.jpg", "0002.jpg"], jpg)
    write_rows(tmp_path / "Jogging" / "groundtruth_rect.1.txt", [[111, 98, 25, 101]] * 3, ",")
    write_rows(tmp_path / "Jogging" / "groundtruth_rect.2.txt", [[180, 79, 37, 114]] * 3, " ")
    write_frames(tmp_path / "Jogging" / "img", ["0001.jpg", "0002.jpg", "0003.jpg"], jpg)
    (tmp_path / "Human4").mkdir()
    (tmp_path / "Human4" / "groundtruth_rect.1.txt").write_text("\n")  # empty, as shipped
    write_rows(tmp_path / "Human4" / "groundtruth_rect.2.txt", [[99, 237, 27, 82]] * 2, ",")
    write_frames(tmp_path / "Human4" / "img", ["0001.jpg", "0002.jpg"], jpg)
    write_rows(tmp_path / "David" / "groundtruth_rect.txt", [[161, 65, 75, 95]] * 3, ",")
    write_frames(tmp_path / "David" / "img", [f"{i:04d}.jpg" for i in range(1, 303)], jpg)
    write_rows(tmp_path / "Diving" / "groundtruth_rect.txt", [[177, 51, 21, 129]] * 2, ",")
    write_frames(tmp_path / "Diving" / "img", [f"{i:04d}.jpg" for i in range(1, 5)], jpg)  # more images than rows
    write_rows(tmp_path / "Broken" / "groundtruth_rect.txt", [[1, 2, 3, 4]] * 4, ",")
    write_frames(tmp_path / "Broken" / "img", ["0001.jpg"], jpg)

    benchmark = read_otb(tmp_path)
    by_name = {s.name: s for s in benchmark}
    assert sorted(by_name) == ["Basketball", "David", "Diving", "Human4", "Jogging.1", "Jogging.2"]
    np.testing.assert_array_equal(by_name["Basketball"].gt_boxes[1], [197, 214, 34, 81])
    np.testing.assert_array_equal(by_name["Jogging.2"].gt_boxes[0], [180, 79, 37, 114])
    assert [p.name for p in by_name["David"].frame_paths] == ["0300.jpg", "0301.jpg", "0302.jpg"]
    assert [p.name for p in by_name["Diving"].frame_paths] == ["0001.jpg", "0002.jpg"]
    reasons = dict(benchmark.skipped)
    assert "1 images, but the ground truth needs 4" in reasons["Broken"]
    assert "empty annotation file" in reasons["Human4/groundtruth_rect.1.txt"]


# ----------------------------------------------------------------------------------------------- GOT-10k


def make_got10k(root: Path, jpg: bytes) -> None:
    val = root / "val"
    val.mkdir(parents=True)
    (val / "list.txt").write_text("GOT-10k_Val_000001\nGOT-10k_Val_000002\n")
    seq = val / "GOT-10k_Val_000001"
    write_rows(seq / "groundtruth.txt", [[1, 1, 4, 4], [2, 2, 4, 4], [3, 3, 4, 4]])
    (seq / "absence.label").write_text("0\n1\n0\n")
    (seq / "meta_info.ini").write_text("[METAINFO]\nobject_class: ant\nresolution: (1920, 1080)\n")
    write_frames(seq, ["00000001.jpg", "00000002.jpg", "00000003.jpg"], jpg)
    # 000002 is listed but absent
    test = root / "test"
    test.mkdir()
    (test / "list.txt").write_text("GOT-10k_Test_000001\n")
    write_rows(test / "GOT-10k_Test_000001" / "groundtruth.txt", [[5, 5, 2, 2]])
    write_frames(test / "GOT-10k_Test_000001", [f"{i:08d}.jpg" for i in range(1, 5)], jpg)


def test_got10k_reader(tmp_path, jpg):
    make_got10k(tmp_path, jpg)
    val = read_got10k(tmp_path)
    assert val.names() == ["GOT-10k_Val_000001"]
    seq = val.sequences[0]
    np.testing.assert_array_equal(seq.absent, [False, True, False])
    assert seq.frame_size == (1920, 1080) and len(seq.frame_paths) == 3
    assert val.skipped[0][0] == "GOT-10k_Val_000002" and "sequence folder not found" in val.skipped[0][1]

    test = read_got10k(tmp_path, subset="test")
    gt = test.sequences[0].gt_boxes
    assert gt.shape == (4, 4)  # the length comes from the frames
    np.testing.assert_array_equal(gt[0], [5, 5, 2, 2])
    assert np.isnan(gt[1:]).all()


def test_got10k_absence_by_protocol(tmp_path, jpg):
    make_got10k(tmp_path, jpg)
    seq = read_got10k(tmp_path, frames=False).sequences[0]
    pred = seq.gt_boxes.copy()  # perfect everywhere
    # pytracking: the absent frame is invalid: success and precision fail, normalized error -1 passes
    pt = score_sequence(pred, seq.gt_boxes, "pytracking", seq.absent, benchmark=seq.benchmark)
    assert pt.success_auc == pytest.approx(20 * (2 / 3) / 21)
    assert pt.precision_20px == pytest.approx(2 / 3) and pt.norm_precision == pytest.approx(1.0)
    g = score_sequence(pred, seq.gt_boxes, "got10k", seq.absent)
    assert g.success_auc == pytest.approx(20 / 21, abs=1e-6) and g.precision_20px == 1.0


# ----------------------------------------------------------------------------------------------- ElysiumTrack


def test_elysiumtrack_reader(tmp_path):
    records = [
        {
            "id": 7,
            "vid": "v1",
            "frames": ["v1/0.jpg", "v1/1.jpg", "v1/2.jpg"],
            "box": [[0.1, 0.2, 0.5, 0.6], None, [0.0, 0.0, 1.0, 1.0]],
            "frame_size": [200, 100],
            "object_description": "a red kite",
        },
        {"id": "short", "frames": ["a.jpg", "b.jpg"], "box": [[0, 0, 1, 1]], "frame_size": [10, 10]},
        {"id": "nosize", "frames": ["a.jpg"], "box": [[0, 0, 1, 1]]},
        {"id": 7, "frames": ["a.jpg"], "box": [[0, 0, 1, 1]], "frame_size": [10, 10]},
    ]
    lines = [json.dumps(r) for r in records]
    lines.insert(1, "{not json")
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(lines) + "\n")

    benchmark = read_elysiumtrack(path, frame_root=tmp_path / "frames")
    assert benchmark.names() == ["7"]
    seq = benchmark.sequences[0]
    np.testing.assert_allclose(seq.gt_boxes[0], [20, 20, 80, 40])  # x1*w, y1*h, (x2-x1)*w, (y2-y1)*h
    assert np.isnan(seq.gt_boxes[1]).all()
    np.testing.assert_allclose(seq.gt_boxes[2], [0, 0, 200, 100])
    assert seq.frame_paths[1] == tmp_path / "frames" / "v1" / "1.jpg"
    assert seq.frame_size == (200, 100) and seq.description == "a red kite"
    reasons = [reason for _, reason in benchmark.skipped]
    assert len(reasons) == 4
    assert "line 2: not JSON" in reasons[0]
    assert "1 boxes for 2 frames" in reasons[1]
    assert "lacks frame_size" in reasons[2]
    assert "repeats an earlier record" in reasons[3]


# ----------------------------------------------------------------------------------------------- layouts, results


def test_layout_errors_name_the_path(tmp_path):
    with pytest.raises(BenchmarkError, match="no LaSOT sequences"):
        read_lasot(tmp_path)
    with pytest.raises(BenchmarkError, match=r"anno/UAV123.*not found"):
        read_uav123(tmp_path)
    with pytest.raises(BenchmarkError, match=r"val/list.txt: not found"):
        read_got10k(tmp_path)
    with pytest.raises(BenchmarkError, match="no OTB sequences"):
        read_otb(tmp_path)
    with pytest.raises(BenchmarkError, match="not a folder"):
        read_otb(tmp_path / "nowhere")
    with pytest.raises(BenchmarkError, match="not a file"):
        read_elysiumtrack(tmp_path / "nowhere.jsonl")
    assert issubclass(BenchmarkError, ValueError)


def test_results_round_trip_atomic_and_toolkit_layouts(tmp_path):
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 500, size=(30, 4))
    boxes[4] = np.nan
    path = write_results(tmp_path / "trk", "seq-1", boxes)
    assert path == tmp_path / "trk" / "seq-1.txt"
    lines = path.read_text().splitlines()
    assert len(lines) == 30 and lines[4] == "nan,nan,nan,nan" and lines[0].count(",") == 3
    np.testing.assert_array_equal(read_results(tmp_path / "trk", "seq-1"), boxes)  # exact, NaN included
    write_results(tmp_path / "trk", "seq-1", boxes[:2])  # overwrite in place, no temp files left
    assert len(read_results(tmp_path / "trk", "seq-1")) == 2
    assert sorted(p.name for p in (tmp_path / "trk").iterdir()) == ["seq-1.txt"]

    # the got10k toolkit's layout <dir>/<seq>/<seq>_001.txt, tab-separated results (pytracking)
    write_rows(tmp_path / "trk" / "GOT-10k_Val_000001" / "GOT-10k_Val_000001_001.txt", [[1, 2, 3, 4]], "\t")
    np.testing.assert_array_equal(read_results(tmp_path / "trk", "GOT-10k_Val_000001"), [[1, 2, 3, 4]])

    with pytest.raises(FileNotFoundError, match="no results for nope"):
        read_results(tmp_path / "trk", "nope")
    (tmp_path / "trk" / "bad.txt").write_text("1,2,3,4\n1,2,x,4\n")
    with pytest.raises(BenchmarkError, match=r"bad.txt: line 2 is not numbers"):
        read_results(tmp_path / "trk", "bad")
    with pytest.raises(BenchmarkError, match="cannot name a result file"):
        write_results(tmp_path, "../escape", boxes)
    with pytest.raises(BenchmarkError, match=r"\(N, 4\)"):
        write_results(tmp_path, "flat", boxes.ravel())


def test_reader_to_dataset_score(tmp_path, jpg):
    """The pieces together: two UAV sequences, perfect and shifted, averaged per sequence."""
    make_uav(tmp_path, jpg)
    benchmark = read_uav123(tmp_path)
    scores = []
    for seq in benchmark:
        pred = seq.gt_boxes.copy()
        if seq.name == "uav2":
            pred[1] += [100, 0, 0, 0]  # frame 2 lost: IoU 0, 100 px
        scores.append(score_sequence(pred, seq.gt_boxes, "got10k", name=seq.name))
    result = score_dataset(scores)
    # bird1_2: 3 valid frames, all perfect; uav2: 2 frames, 1 perfect (frame 1 is always ground truth)
    assert result.precision_20px == pytest.approx((1 + 1 / 2) / 2)
    assert result.success_auc == pytest.approx((20 / 21 + 10 / 21) / 2, abs=1e-6)
