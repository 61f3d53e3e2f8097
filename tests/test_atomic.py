"""`elysium.utils.atomic`: a reader sees the old file or the whole new one; a failed write leaves no temporary file."""

from __future__ import annotations

import json
import math
import os
import stat

import pytest

from elysium.utils.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic


def test_writes_create_folders_and_return_the_path(tmp_path):
    target = tmp_path / "a" / "b" / "data.bin"
    assert write_bytes_atomic(target, b"\x00\x01") == target and target.read_bytes() == b"\x00\x01"
    assert write_text_atomic(str(tmp_path / "t.txt"), "é\n") == tmp_path / "t.txt"
    assert (tmp_path / "t.txt").read_bytes() == "é\n".encode()
    write_json_atomic(tmp_path / "d.json", {"b": 1, "a": [1.5]}, sort_keys=True)
    assert (tmp_path / "d.json").read_text() == '{\n "a": [\n  1.5\n ],\n "b": 1\n}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # as a plain open() makes it, not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "d.json", "t.txt"]  # no temporary files left


def test_a_failed_replace_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "ckpt" / "data_skip_counts.json"
    write_json_atomic(target, {"a": 1})

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}  # the old file is intact
    assert [p.name for p in target.parent.iterdir()] == ["data_skip_counts.json"]  # no temp left behind


def test_data_is_synced_before_the_replace_and_a_failed_sync_writes_nothing(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    write_text_atomic(tmp_path / "x.txt", "new")
    assert events == ["fsync", "replace"]

    def no_space(fd):
        raise OSError("no space")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="no space"):
        write_text_atomic(tmp_path / "x.txt", "newer")
    assert (tmp_path / "x.txt").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_strict_json_refuses_nan_before_touching_the_file(tmp_path):
    target = write_json_atomic(tmp_path / "m.json", {"auc": math.nan})
    assert target.read_text() == '{\n "auc": NaN\n}\n'
    with pytest.raises(ValueError):
        write_json_atomic(target, {"auc": math.inf}, allow_nan=False)
    assert "NaN" in target.read_text() and [p.name for p in tmp_path.iterdir()] == ["m.json"]
