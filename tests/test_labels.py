from pathlib import Path

import pytest

from mmdf.data.config import DataConfig
from mmdf.data.labels import load_dataset, load_split, pair_with_clips, read_labels
from mmdf.errors import LabelError


def write(tmp_path: Path, text: str, name: str = "labels.txt") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reads_ffdv_labels(tmp_path):
    p = write(tmp_path, "video_name,target\na.mp4,0\nb.mp4,1\n")
    df = read_labels(p)
    assert df["video_name"].tolist() == ["a.mp4", "b.mp4"]
    assert df["target"].tolist() == [0, 1]
    assert str(df["target"].dtype) == "int8"


def test_test_list_with_names_only(tmp_path):
    p = write(tmp_path, "video_name\na.mp4\nb.mp4\n")
    df = read_labels(p, require_target=False)
    assert df.columns.tolist() == ["video_name"]
    assert len(df) == 2


def test_missing_header(tmp_path):
    p = write(tmp_path, "a.mp4,0\nb.mp4,1\n")
    with pytest.raises(LabelError, match=r"labels.txt, line 1: missing header.*'video_name,target'"):
        read_labels(p)


def test_header_without_target(tmp_path):
    p = write(tmp_path, "video_name,label\na.mp4,0\n")
    with pytest.raises(LabelError, match="no 'target'"):
        read_labels(p)


def test_target_not_binary_lists_lines_and_total(tmp_path):
    rows = "".join(f"c{i}.mp4,{2 if i % 2 else 0}\n" for i in range(20))
    p = write(tmp_path, "video_name,target\n" + rows)
    with pytest.raises(LabelError) as err:
        read_labels(p)
    msg = str(err.value)
    assert "target not 0 or 1" in msg
    assert "line 3 ('c1.mp4,2')" in msg
    assert "(10 in all)" in msg
    assert "c19.mp4" not in msg  # a handful shown, not all


def test_duplicates_name_both_lines(tmp_path):
    p = write(tmp_path, "video_name,target\na.mp4,0\nb.mp4,1\na.mp4,1\n")
    with pytest.raises(LabelError, match=r"duplicate video_name: line 4 repeats line 2 \(a.mp4\)"):
        read_labels(p)


def test_name_without_mp4(tmp_path):
    p = write(tmp_path, "video_name,target\na.avi,0\nb,1\n")
    with pytest.raises(LabelError, match=r"without '.mp4'.*\(2 in all\)"):
        read_labels(p)


def test_wrong_column_count(tmp_path):
    p = write(tmp_path, "video_name,target\na.mp4\n")
    with pytest.raises(LabelError, match="wrong number of columns"):
        read_labels(p)


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(LabelError, match="label file not found"):
        read_labels(tmp_path / "nope.txt")
    with pytest.raises(LabelError, match="empty"):
        read_labels(write(tmp_path, ""))


def test_label_naming_missing_clip(tmp_path):
    clips = tmp_path / "trainset"
    clips.mkdir()
    (clips / "a.mp4").write_bytes(b"x")
    p = write(tmp_path, "video_name,target\na.mp4,0\nb.mp4,1\n")
    df = read_labels(p)
    with pytest.raises(LabelError, match=r"1 clip\(s\) named there are not in .*trainset: b.mp4"):
        pair_with_clips(df, clips, p)
    kept = pair_with_clips(df, clips, p, missing="keep")
    assert kept["exists"].tolist() == [True, False]  # never dropped, flagged


def test_missing_clip_folder(tmp_path):
    p = write(tmp_path, "video_name,target\na.mp4,0\n")
    with pytest.raises(LabelError, match="clip folder not found"):
        pair_with_clips(read_labels(p), tmp_path / "absent", p)


def make_layout(root: Path) -> DataConfig:
    for split, names in {"trainset": ["a.mp4", "b.mp4"], "valset": ["c.mp4"], "testset": ["d.mp4"]}.items():
        (root / split).mkdir(parents=True)
        for n in names:
            (root / split / n).write_bytes(b"x")
    (root / "trainset_label.txt").write_text("video_name,target\na.mp4,0\nb.mp4,1\n")
    (root / "valset_label.txt").write_text("video_name,target\nc.mp4,1\n")
    (root / "testset_list.txt").write_text("video_name\nd.mp4\n")
    return DataConfig(root=str(root))


def test_load_dataset_all_splits(tmp_path):
    cfg = make_layout(tmp_path)
    df = load_dataset(cfg)
    assert df["split"].tolist() == ["train", "train", "val", "test"]
    assert df["target"].isna().tolist() == [False, False, False, True]
    assert Path(df["path"].iloc[0]).is_file()
    assert load_split(cfg, "test")["video_name"].tolist() == ["d.mp4"]


def test_no_test_split(tmp_path):
    cfg = make_layout(tmp_path)
    cfg.test_list = None
    assert set(load_dataset(cfg)["split"]) == {"train", "val"}


def test_missing_demo_labels_say_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LabelError, match="made by `mmdf demo-data`"):
        read_labels("data/demo/trainset_label.txt")
    with pytest.raises(LabelError, match=r"not found: data/other/trainset_label.txt$"):
        read_labels("data/other/trainset_label.txt")


def test_names_differing_only_in_case_are_refused_naming_both_lines(tmp_path):
    p = write(tmp_path, "video_name,target\nclip.mp4,0\nb.mp4,1\nClip.MP4,1\n")
    with pytest.raises(LabelError, match=r"differing only in case.*line 4 \(Clip.MP4\) and line 2 \(clip.mp4\)"):
        read_labels(p)


def test_label_file_not_utf8_says_so(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_bytes("video_name,target\ncafé.mp4,0\n".encode("latin-1"))
    with pytest.raises(LabelError, match=r"labels.txt: not UTF-8 text \(byte 0xe9 on line 2.*save the file as UTF-8"):
        read_labels(p)
