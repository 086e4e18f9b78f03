"""What `mmdf predict` accepts as input, and what it refuses before any decoding."""

from __future__ import annotations

import io
from pathlib import Path

from mmdf.predict.inputs import VIDEO_SUFFIXES, collect_inputs, screen


def test_a_list_on_standard_input_and_every_container_suffix(tmp_path):
    got = collect_inputs(["-", tmp_path / "x.webm"], stdin=io.StringIO("path\na.mov\n/abs/b.mkv\n"))
    assert got == [Path("a.mov"), Path("/abs/b.mkv"), tmp_path / "x.webm"]
    assert {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"} <= set(VIDEO_SUFFIXES)


def test_screen_names_why_a_file_is_not_prepared(tmp_path):
    (tmp_path / "empty.MP4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "clip.MKV").write_bytes(b"x")
    (tmp_path / "folder.mp4").mkdir()
    assert screen(tmp_path / "gone.mp4").status == "missing"
    assert (screen(tmp_path / "empty.MP4").status, screen(tmp_path / "empty.MP4").error) == \
        ("corrupt", "empty file (0 bytes)")
    assert screen(tmp_path / "notes.txt").status == "unsupported"
    assert screen(tmp_path / "folder.mp4").status == "unsupported"
    assert screen(tmp_path / "clip.MKV").status is None  # to be prepared; decoding decides the rest
