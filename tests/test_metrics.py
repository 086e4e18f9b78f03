import numpy as np
import pytest

from mmdf.errors import MmdfError
from mmdf.metrics import roc_auc, score_report, tpr_at_fpr


def test_auc_hand_worked():
    # pairs (fake, real): (0.8,0.1) win, (0.8,0.4) win, (0.35,0.1) win, (0.35,0.4) loss -> 3/4
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, s) == pytest.approx(0.75)


def test_auc_ties_count_half():
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    # fake 0.5 ties real 0.5 (half), beats real 0.2 (one) -> 1.5/2
    assert roc_auc([0, 0, 1], [0.2, 0.5, 0.5]) == pytest.approx(0.75)


def test_tpr_at_fpr_hand_worked():
    # 1000 reals at 0..0.999, one real at 2.0; fakes: 3 above every real, 1 below.
    reals = list(np.linspace(0, 0.999, 1000)) + [2.0]
    fakes = [3.0, 4.0, 5.0, 0.5]
    y = [0] * len(reals) + [1] * len(fakes)
    s = reals + fakes
    # FPR <= 1e-3 allows at most 1 of 1001 reals above threshold: threshold 2.0 -> TPR 3/4
    assert tpr_at_fpr(y, s, 1e-3) == pytest.approx(0.75)
    # FPR = 0 only: the fakes strictly above 2.0 -> 3/4 as well; with max_fpr=0.5 -> all above 0.5
    assert tpr_at_fpr(y, s, 0.0) == pytest.approx(0.75)
    assert tpr_at_fpr(y, s, 0.6) == pytest.approx(1.0)


def test_tpr_at_fpr_never_splits_a_tie():
    # The only threshold with FPR <= 1e-3 excludes the tie: the fake tied with a real does not count.
    y = [0, 0, 1, 1]
    s = [0.1, 0.9, 0.9, 0.95]
    assert tpr_at_fpr(y, s, 1e-3) == pytest.approx(0.5)


def test_perfect_and_inverted():
    y = [0, 0, 1, 1]
    assert roc_auc(y, [0, 0.1, 0.8, 0.9]) == 1.0
    assert tpr_at_fpr(y, [0, 0.1, 0.8, 0.9]) == 1.0
    assert roc_auc(y, [0.9, 0.8, 0.1, 0]) == 0.0
    assert tpr_at_fpr(y, [0.9, 0.8, 0.1, 0]) == 0.0


def test_single_class_is_a_clear_error():
    with pytest.raises(MmdfError, match="both real and fake"):
        roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(MmdfError, match="all 2 are real"):
        tpr_at_fpr([0, 0], [0.1, 0.2])


def test_nan_and_bad_labels_rejected():
    with pytest.raises(MmdfError, match="NaN"):
        roc_auc([0, 1], [0.1, float("nan")])
    with pytest.raises(MmdfError, match="0 \\(real\\) or 1"):
        roc_auc([0, 2], [0.1, 0.2])


def test_score_report_keys():
    r = score_report([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8])
    assert r == {"auc": 1.0, "tpr@fpr=0.001": 1.0, "n": 4, "n_fake": 2, "n_real": 2}


def test_cue_auc_leaves_out_clips_without_the_cue_and_says_nan_for_one_class():
    from mmdf.metrics import cue_auc

    y = np.array([0, 0, 1, 1, 1])
    assert cue_auc(y, [1.0, 2.0, 3.0, 4.0, np.nan]) == 1.0
    assert cue_auc(y, [4.0, 3.0, 2.0, 1.0, np.nan]) == 0.0  # a shortcut the other way round
    assert np.isnan(cue_auc(y, [np.nan, np.nan, 1.0, 2.0, 3.0]))  # only fakes have a value
