"""Submission validation: exactly the test list, in order, valid scores, else nothing is written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmdf.stack.submission import SubmissionError, build_submission, validate_submission, write_submission

NAMES = [f"clip_{i}.mp4" for i in range(5)]


def _sub(names=NAMES, probs=None, col="y_pred"):
    return build_submission(names, np.linspace(0, 1, len(names)) if probs is None else probs, col)


def test_valid_submission_is_written_with_header(tmp_path):
    path = write_submission(_sub(), tmp_path / "submission.csv", NAMES)
    lines = path.read_text().splitlines()
    assert lines[0] == "video_name,y_pred" and len(lines) == 6
    assert pd.read_csv(path)["video_name"].tolist() == NAMES


@pytest.mark.parametrize(
    "sub, message",
    [
        (_sub(NAMES[:-1]), "1 missing"),
        (_sub(NAMES + ["extra.mp4"]), "1 not in the list"),
        (_sub(NAMES[:4] + [NAMES[0]]), "duplicated clips: clip_0.mp4"),
        (_sub(NAMES[::-1]), "not in the test list's order"),
        (_sub(probs=[0.1, np.nan, 0.3, 0.4, 0.5]), "missing or outside"),
        (_sub(probs=[0.1, 1.2, 0.3, 0.4, -0.1]), "2 score\\(s\\) missing or outside"),
        (_sub(col="score"), "expected video_name,y_pred"),
    ],
)
def test_invalid_submission_is_refused_and_not_written(tmp_path, sub, message):
    with pytest.raises(SubmissionError, match=message):
        validate_submission(sub, NAMES)
    with pytest.raises(SubmissionError):
        write_submission(sub, tmp_path / "submission.csv", NAMES)
    assert not (tmp_path / "submission.csv").exists()


def test_pred_column_is_configurable(tmp_path):
    write_submission(_sub(col="score"), tmp_path / "s.csv", NAMES, pred_column="score")
    assert (tmp_path / "s.csv").read_text().startswith("video_name,score\n")
