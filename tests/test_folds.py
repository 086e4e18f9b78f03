import pandas as pd
import pytest

from mmdf.data.config import FoldConfig
from mmdf.data.folds import check_folds, load_or_make_folds, make_folds
from mmdf.errors import MmdfError


def train_frame(n=40):
    return pd.DataFrame({"video_name": [f"c{i:03d}.mp4" for i in range(n)], "target": [i % 4 == 0 for i in range(n)]}).astype(
        {"target": int}
    )


def test_stratified_deterministic_every_clip_once():
    train = train_frame()
    a = make_folds(train, FoldConfig(n_splits=5, seed=1))
    b = make_folds(train, FoldConfig(n_splits=5, seed=1))
    c = make_folds(train, FoldConfig(n_splits=5, seed=2))
    pd.testing.assert_frame_equal(a, b)
    assert not a["fold"].equals(c["fold"])
    assert sorted(a["fold"].unique()) == [0, 1, 2, 3, 4]
    assert (a.groupby("fold")["target"].sum() == 2).all()  # 10 fakes spread 2 per fold


def test_groups_stay_in_one_fold(tmp_path):
    train = train_frame()
    groups = pd.DataFrame({"video_name": train["video_name"], "identity": [i // 4 for i in range(40)]})
    groups.to_csv(tmp_path / "g.csv", index=False)
    folds = make_folds(train, FoldConfig(n_splits=5, groups_file=str(tmp_path / "g.csv"), group_column="identity"))
    merged = folds.merge(groups, on="video_name")
    assert (merged.groupby("identity")["fold"].nunique() == 1).all()


def test_saved_and_reused(tmp_path):
    train = train_frame()
    path = tmp_path / "folds.csv"
    first = load_or_make_folds(path, train, FoldConfig(n_splits=4, seed=0))
    # a different seed must not silently re-split an existing file: it is reused
    again = load_or_make_folds(path, train, FoldConfig(n_splits=4, seed=99))
    pd.testing.assert_frame_equal(first, again)
    with pytest.raises(MmdfError, match="folds.n_splits=5"):
        load_or_make_folds(path, train, FoldConfig(n_splits=5))
    with pytest.raises(MmdfError, match="does not match the train labels"):
        load_or_make_folds(path, train_frame(44), FoldConfig(n_splits=4))


def test_too_few_per_class():
    train = train_frame(8)  # 2 fakes
    with pytest.raises(MmdfError, match="lower folds.n_splits"):
        make_folds(train, FoldConfig(n_splits=3))


def test_leak_detected():
    folds = pd.DataFrame({"video_name": ["a", "a", "b"], "target": [0, 0, 1], "fold": [0, 1, 1]})
    with pytest.raises(MmdfError, match="leaks"):
        check_folds(folds)


def test_same_clips_guards_share_one_check():
    from mmdf.data.folds import assert_same_clips, clip_differences
    from mmdf.stack.inputs import compare_folds

    a = pd.DataFrame({"video_name": ["x", "y", "z"], "target": [0, 1, 1], "fold": [0, 1, 0]})
    b = a.assign(target=[0, 0, 1])
    assert clip_differences(a, b) == ([], [], ["y"])
    assert clip_differences(a.iloc[:2], a.iloc[1:]) == (["x"], ["z"], [])
    assert clip_differences(a.drop(columns="target"), b) == ([], [], [])
    with pytest.raises(MmdfError, match="targets differ from the train labels for 1 clip"):
        assert_same_clips(a, b, "folds.csv")
    with pytest.raises(MmdfError, match="1 clip\\(s\\) without a fold"):
        assert_same_clips(a.iloc[:2], a, "folds.csv")
    with pytest.raises(MmdfError, match="targets differ between A and B: y"):
        compare_folds(a, "A", b, "B")
    compare_folds(a, "A", a.copy(), "B")
