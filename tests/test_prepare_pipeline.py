"""`mmdf prepare` end to end on tiny hand-made clips: statuses, manifest, cache, resume, shards."""

from __future__ import annotations

import filecmp
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from media_factory import make_clip, make_labels
from mmdf.cli import main
from mmdf.run_config import load_config
from mmdf.errors import LabelError, MmdfError
from mmdf.prepare.cache import cache_root, read_journal
from mmdf.prepare.manifest import COLUMNS, load_manifest
from mmdf.prepare.runner import merge_shards, prepare_dataset
from mmdf.prepare.row import FEATURE_FILES
from mmdf.prepare.store import load_crops, read_sync

FAST = [
    "prepare.isolate=false", "prepare.progress=false", "prepare.faces.num_frames=4",
    "prepare.faces.detect_size=480", "prepare.faces.min_face_size=30", "prepare.faces.crop_size=64",
    "prepare.mel.image_size=64",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, realdata):
    """Every bad input of the issue, plus good clips, in an FFDV layout."""
    root = tmp_path_factory.mktemp("ds")
    train, val, test = root / "trainset", root / "valset", root / "testset"
    make_clip(train / "good.mp4", duration=2.0)
    make_clip(train / "no_audio.mp4", audio=None)
    make_clip(train / "no_face.mp4", face=False)
    make_clip(train / "short.mp4", duration=0.4)
    make_clip(train / "mismatch.mp4", duration=2.0, audio_duration=3.5)
    (train / "empty.mp4").write_bytes(b"")
    shutil.copy(realdata / "corrupted.mp4", train / "corrupt.mp4")
    make_clip(val / "silent.mp4", audio="silent")
    make_clip(val / "good_val.mp4", duration=1.6, seed=3)
    test.mkdir()
    shutil.copy(realdata / "street_faces_1080p.mp4", test / "street.mp4")
    make_labels(root / "trainset_label.txt", [
        ("good.mp4", 0), ("no_audio.mp4", 1), ("no_face.mp4", 0), ("short.mp4", 1),
        ("mismatch.mp4", 1), ("empty.mp4", 0), ("corrupt.mp4", 1), ("gone.mp4", 0),
    ])
    make_labels(root / "valset_label.txt", [("silent.mp4", 0), ("good_val.mp4", 1)])
    make_labels(root / "testset_list.txt", [("street.mp4", None)])
    return root


def config(dataset, cache, *extra):
    return load_config(None, [f"data.root={dataset}", f"data.cache_dir={cache}", *FAST, *extra])


EXPECTED = {
    ("train", "good.mp4"): ("ok", "ok", "ok"),
    ("train", "no_audio.mp4"): ("no_audio", "no_audio", "ok"),
    ("train", "no_face.mp4"): ("no_face", "ok", "no_face"),
    ("train", "short.mp4"): ("too_short", "too_short", "too_short"),
    ("train", "mismatch.mp4"): ("ok", "ok", "ok"),
    ("train", "empty.mp4"): ("corrupt", "corrupt", "corrupt"),
    ("train", "corrupt.mp4"): ("corrupt", "no_audio", "corrupt"),
    ("train", "gone.mp4"): ("missing", "missing", "missing"),
    ("val", "silent.mp4"): ("ok", "ok", "ok"),
    ("val", "good_val.mp4"): ("ok", "ok", "ok"),
    ("test", "street.mp4"): ("ok", "ok", "ok"),
}


@pytest.fixture(scope="module")
def single_run(dataset, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    cfg = config(dataset, cache)
    manifest = prepare_dataset(cfg)
    return cfg, manifest


def test_every_clip_accounted_with_expected_status(single_run):
    cfg, manifest = single_run
    assert list(manifest.columns) == COLUMNS
    got = {
        (r.split, r.video_name): (r.status, r.audio_status, r.visual_status)
        for r in manifest.itertuples()
    }
    assert got == EXPECTED
    bad = manifest[manifest.status != "ok"]
    assert (bad.error.str.len() > 0).all(), "every problem carries its reason"
    assert "0 bytes" in manifest.set_index("video_name").loc["empty.mp4", "error"]
    assert str(manifest.target.dtype) == "Int8"
    assert manifest.loc[manifest.split == "test", "target"].isna().all()


def test_features_have_contract_shapes(single_run):
    cfg, manifest = single_run
    by_name = manifest.set_index("video_name")
    good = by_name.loc["good.mp4"]
    mel = np.load(good.mel_file)
    faces = load_crops(good.faces_file)
    assert mel.dtype == np.uint8 and mel.shape == (64, 64)
    assert faces.dtype == np.uint8 and faces.shape == (good.frames_with_face, 64, 64, 3)
    assert good.frames_sampled == 4 and good.frames_with_face >= 1 and good.face_conf_mean > 0.9
    assert np.load(by_name.loc["silent.mp4", "mel_file"]).max() == 0  # constant signal, no NaN
    street = by_name.loc["street.mp4"]
    assert load_crops(street.faces_file).shape[1:] == (64, 64, 3)
    for name in ("no_audio.mp4", "short.mp4", "gone.mp4", "empty.mp4"):
        assert by_name.loc[name, "mel_file"] == ""
    assert by_name.loc["no_face.mp4", "faces_file"] == ""
    ok = manifest[manifest.status == "ok"]
    assert all(p.startswith("/") for p in ok.mel_file) and all(p.startswith("/") for p in ok.faces_file)


def test_load_manifest_round_trip_and_absent(single_run, dataset, tmp_path):
    cfg, manifest = single_run
    loaded = load_manifest(cfg)
    pd.testing.assert_frame_equal(loaded.reset_index(drop=True), manifest.reset_index(drop=True), check_dtype=False)
    with pytest.raises(MmdfError, match="mmdf prepare"):
        load_manifest(config(dataset, tmp_path / "empty_cache"))


def test_cache_keyed_by_feature_parameters(single_run, dataset):
    cfg, _ = single_run
    assert cache_root(config(dataset, cfg.data.cache_dir, "prepare.mel.n_mels=64")) != cache_root(cfg)
    assert cache_root(config(dataset, cfg.data.cache_dir, "prepare.faces.num_frames=8")) != cache_root(cfg)
    assert cache_root(config(dataset, cfg.data.cache_dir, "prepare.workers=7")) == cache_root(cfg)
    params = json.loads((cache_root(cfg) / "params.json").read_text())
    assert params["mel"]["image_size"] == 64


def test_mel_ablation_takes_the_faces_from_the_sibling_cache(single_run, dataset, tmp_path, monkeypatch):
    """A cache differing only in mel parameters links the face crops instead of detecting again."""
    cfg, manifest = single_run
    shutil.copytree(cache_root(cfg), tmp_path / cache_root(cfg).name)
    import mmdf.prepare.clip as clip_mod

    def no_detection(*args, **kwargs):
        raise AssertionError("faces were detected again")

    monkeypatch.setattr(clip_mod, "faces_from_frames", no_detection)
    mels = prepare_dataset(config(dataset, tmp_path, "prepare.mel.n_mels=32"))
    assert cache_root(config(dataset, tmp_path, "prepare.mel.n_mels=32")).parent == tmp_path
    assert {(r.split, r.video_name): (r.status, r.audio_status, r.visual_status)
            for r in mels.itertuples()} == EXPECTED
    visual = ["visual_status", "frames_sampled", "frames_with_face", "face_conf_mean"]
    pd.testing.assert_frame_equal(mels[visual], manifest[visual])
    good_new, good_old = mels.set_index("video_name").loc["good.mp4"], manifest.set_index("video_name").loc["good.mp4"]
    assert good_new.faces_file != good_old.faces_file
    assert filecmp.cmp(good_new.faces_file, good_old.faces_file, shallow=False)  # linked, not re-encoded
    assert not np.array_equal(np.load(good_new.mel_file), np.load(good_old.mel_file))  # the mels are new
    assert "no face" in mels.set_index("video_name").loc["no_face.mp4", "error"]
    for name in manifest.loc[manifest.sync_status == "ok", "video_name"]:  # the sync half is lent too
        new, old_ = (np.load(m.set_index("video_name").loc[name, "sync_file"]) for m in (mels, manifest))
        assert all(np.array_equal(new[k], old_[k]) for k in old_.files), name


def test_a_lent_face_half_gives_the_sync_half_it_would_have_had(single_run, dataset, tmp_path):
    """A sync ablation takes the face crops from the sibling cache, but its sync features are those of a
    cache made from nothing: the landmarks that place the mouth are found again, not made up."""
    cfg, manifest = single_run
    shutil.copytree(cache_root(cfg), tmp_path / "beside" / cache_root(cfg).name)
    lent = prepare_dataset(config(dataset, tmp_path / "beside", "prepare.sync.mouth_size=32"))
    alone = prepare_dataset(config(dataset, tmp_path / "alone", "prepare.sync.mouth_size=32"))
    assert lent.set_index("video_name").loc["good.mp4", "faces_file"].startswith(str(tmp_path / "beside"))
    assert (lent.sync_status == alone.sync_status).all() and (lent.sync_status == "ok").any()
    for name in alone.loc[alone.sync_status == "ok", "video_name"]:
        a, b = (read_sync(m.set_index("video_name").loc[name, "sync_file"]) for m in (lent, alone))
        assert a["mouth"].shape[1:] == (32, 32)
        assert all(np.array_equal(a[k], b[k]) for k in ("mouth", "mel", "envelope", "artefacts", "times")), name


def test_second_run_is_a_no_op(single_run):
    cfg, manifest = single_run
    journal = cache_root(cfg) / "journal" / "shard-0-of-1.jsonl"
    lines = journal.read_text().count("\n")
    again = prepare_dataset(cfg)
    assert journal.read_text().count("\n") == lines, "nothing recomputed"
    pd.testing.assert_frame_equal(again, manifest)


def test_resume_after_kill(single_run, dataset, tmp_path):
    """A killed run leaves a torn journal line, stray temp files and unprocessed clips; the next run completes."""
    cfg, manifest = single_run
    src = cache_root(cfg)
    cfg2 = config(dataset, tmp_path)
    dst = cache_root(cfg2)
    shutil.copytree(src, dst)
    (dst / "manifest.parquet").unlink()
    journal = dst / "journal" / "shard-0-of-1.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])  # torn line
    done_before = set(read_journal(dst))
    assert len(done_before) == 3
    leftover = dst / "mel" / "train" / ".good.npy.tmp999999999"  # a killed writer's (pid long gone)
    leftover.write_bytes(b"half")
    resumed = prepare_dataset(cfg2)
    assert not leftover.exists(), "the next run removes a killed run's temporary files"
    cols = ["split", "video_name", "status", "audio_status", "visual_status", "frames_with_face"]
    pd.testing.assert_frame_equal(resumed[cols], manifest[cols])
    rows = [json.loads(x) for x in journal.read_text().splitlines()[4:]]
    redone = {(r["split"], r["video_name"]) for r in rows}
    assert not redone & done_before, "finished clips are not redone"


def test_shards_and_merge_equal_single_run(single_run, dataset, tmp_path):
    cfg, manifest = single_run
    cfg3 = config(dataset, tmp_path)
    parts = [prepare_dataset(cfg3, shard=f"{i}/3") for i in range(3)]
    names = [set(p.video_name) for p in parts]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert sum(len(p) for p in parts) == len(manifest)
    merged = merge_shards(cfg3)
    cols = [c for c in COLUMNS if c not in (*FEATURE_FILES.values(), "path")]
    pd.testing.assert_frame_equal(merged[cols], manifest[cols], check_exact=False, atol=1e-4)
    for a, b in zip(merged.mel_file, manifest.mel_file):
        if a:
            assert np.array_equal(np.load(a), np.load(b))


def test_merge_refuses_unfinished_shards(dataset, tmp_path):
    cfg = config(dataset, tmp_path)
    prepare_dataset(cfg, shard="0/3")
    with pytest.raises(MmdfError, match="have not been prepared"):
        merge_shards(cfg)


def test_bad_shard_and_label_problems_fail_before_work(dataset, tmp_path):
    with pytest.raises(MmdfError, match="i/N"):
        prepare_dataset(config(dataset, tmp_path), shard="3")
    with pytest.raises(MmdfError, match="0 <= i < N"):
        prepare_dataset(config(dataset, tmp_path), shard="3/3")
    bad = tmp_path / "bad_labels.txt"
    bad.write_text("video_name,target\ngood.mp4,7\n")
    with pytest.raises(LabelError):
        prepare_dataset(config(dataset, tmp_path, f"data.train_labels={bad}"))
    assert not (tmp_path / "journal").exists()


def test_cli_runs_and_reports(dataset, capsys, single_run, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    cfg, _ = single_run
    rc = main(["prepare", "--config", "configs/data.yaml", f"data.root={dataset}",
               f"data.cache_dir={cfg.data.cache_dir}", *FAST])
    assert rc == 0
    out = capsys.readouterr().out
    assert "11 clips" in out and "missing 1" in out and "manifest:" in out
    assert main(["prepare", "--config", "configs/data.yaml", "--merge", "--shard", "0/2"]) == 2


def test_prepare_clips_for_new_paths(dataset, tmp_path):
    """`mmdf predict` prepares clips outside the label files into the same cache and schema."""
    from mmdf.prepare.runner import prepare_clips

    cfg = config(dataset, tmp_path)
    paths = [dataset / "valset" / "good_val.mp4", tmp_path / "nowhere.mp4", dataset / "trainset" / "no_audio.mp4"]
    rows = prepare_clips(paths, cfg)
    assert list(rows.columns) == COLUMNS
    assert rows.split.tolist() == ["predict"] * 3
    assert rows.video_name.tolist() == ["good_val.mp4", "nowhere.mp4", "no_audio.mp4"]
    assert rows.status.tolist() == ["ok", "missing", "no_audio"]
    assert rows.target.isna().all()
    assert np.load(rows.mel_file[0]).shape == (64, 64)
    assert str(cache_root(cfg)) in rows.faces_file[2]


@pytest.mark.parametrize("path", ["configs/data.yaml", "configs/demo/data.yaml"])
def test_config_files_load(repo_root, path):
    cfg = load_config(repo_root / path)
    assert cfg.prepare.mel.n_mels == 128 and cfg.prepare.mel.sample_rate == 22050
    if "demo" in path:
        assert cfg.data.root == "data/demo" and cfg.data.cache_dir == "cache/demo"
        assert cfg.prepare.faces.num_frames <= 8 and cfg.prepare.faces.crop_size <= 128
        assert cfg.prepare.mel.image_size <= 128
    else:
        assert cfg.data.root == "data/ffdv" and cfg.data.cache_dir == "cache/ffdv"
        assert (cfg.prepare.faces.num_frames, cfg.prepare.faces.crop_size, cfg.prepare.mel.image_size) == (16, 224, 256)


def test_clip_replaced_in_place_is_prepared_again(tmp_path):
    """Resume keys on the clip's size and mtime: a re-generated clip must not reuse stale features."""
    root = tmp_path / "ds"
    make_clip(root / "trainset" / "a.mp4", duration=1.5, seed=1)
    make_clip(root / "trainset" / "b.mp4", duration=1.5, seed=2)
    make_labels(root / "trainset_label.txt", [("a.mp4", 0), ("b.mp4", 1)])
    cfg = config(root, tmp_path / "cache", "data.val_labels=null", "data.test_list=null")
    first = prepare_dataset(cfg)
    make_clip(root / "trainset" / "a.mp4", duration=2.5, seed=5)  # same name, new content
    second = prepare_dataset(cfg)
    journal = (cache_root(cfg) / "journal" / "shard-0-of-1.jsonl").read_text().splitlines()
    redone = [json.loads(x)["video_name"] for x in journal[2:]]
    assert redone == ["a.mp4"]
    assert second.loc[0, "duration"] > first.loc[0, "duration"] + 0.5
    assert second.loc[1, "duration"] == first.loc[1, "duration"]


def test_an_address_implies_the_ray_engine_and_refuses_the_local_one():
    import argparse

    from mmdf.prepare.cli import engine_of

    assert engine_of(argparse.Namespace(engine=None, address=None)) == (None, None)
    assert engine_of(argparse.Namespace(engine=None, address="auto")) == ("ray", "auto")
    with pytest.raises(MmdfError, match="--engine ray"):
        engine_of(argparse.Namespace(engine="local", address="auto"))
