"""The challenge submission: built, validated, then written.

A submission is ``video_name,<pred_column>`` with one row per clip of the test
list, in its order, probabilities in [0, 1] and nothing missing. It is checked
in full before the file is written, so a bad one never reaches disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mmdf.data.labels import NAME_COL
from mmdf.errors import MmdfError, list_offenders
from mmdf.files import atomic_write


class SubmissionError(MmdfError):
    """The submission does not match the test list or holds invalid scores."""


def build_submission(names: Sequence[str], probs, pred_column: str = "y_pred") -> pd.DataFrame:
    return pd.DataFrame({NAME_COL: list(names), pred_column: np.asarray(probs, dtype=float)})


def validate_submission(sub: pd.DataFrame, expected_names: Sequence[str], pred_column: str = "y_pred") -> None:
    """Raise :class:`SubmissionError` unless ``sub`` is exactly the test list, in order, with valid scores."""
    expected = list(expected_names)
    if list(sub.columns) != [NAME_COL, pred_column]:
        raise SubmissionError(
            f"submission columns are {', '.join(map(str, sub.columns))}; expected {NAME_COL},{pred_column}"
        )
    names = sub[NAME_COL].tolist()
    dup = sub.loc[sub[NAME_COL].duplicated(), NAME_COL].tolist()
    if dup:
        raise SubmissionError(f"submission has duplicated clips: {list_offenders(dup)}")
    if set(names) != set(expected):
        lack = sorted(set(expected) - set(names))
        extra = sorted(set(names) - set(expected))
        raise SubmissionError(
            f"submission clips differ from the test list: {len(lack)} missing "
            f"({list_offenders(lack) if lack else 'none'}), {len(extra)} not in the list "
            f"({list_offenders(extra) if extra else 'none'})"
        )
    if names != expected:
        first = next(i for i, (a, b) in enumerate(zip(names, expected)) if a != b)
        raise SubmissionError(
            f"submission rows are not in the test list's order (row {first + 1} is "
            f"{names[first]}, the list has {expected[first]})"
        )
    values = pd.to_numeric(sub[pred_column], errors="coerce")
    bad = values.isna() | (values < 0) | (values > 1)
    if bad.any():
        raise SubmissionError(
            f"submission has {int(bad.sum())} score(s) missing or outside [0, 1]: "
            f"{list_offenders(sub.loc[bad, NAME_COL].tolist())}"
        )


def write_submission(
    sub: pd.DataFrame, path: str | Path, expected_names: Sequence[str], pred_column: str = "y_pred"
) -> Path:
    """Validate, then write atomically (a half-written submission never exists)."""
    validate_submission(sub, expected_names, pred_column)
    path = Path(path)
    with atomic_write(path) as tmp:
        sub.to_csv(tmp, index=False, float_format="%.8f")
    return path
