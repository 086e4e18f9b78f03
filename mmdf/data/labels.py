"""FFDV label files: read, check, and pair with the clip folder.

A label file is a CSV with a header ``video_name,target`` (``1`` = deepfake,
``0`` = real); a test list may have the ``video_name`` column only. Every
problem is reported with the file, the line and what to do, and no row is ever
dropped silently: a file either loads whole or raises :class:`LabelError`.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import pandas as pd

from mmdf.data.config import SPLITS, DataConfig
from mmdf.errors import LabelError, list_offenders, not_utf8

NAME_COL = "video_name"
TARGET_COL = "target"
DEMO_DATA_ROOT = "data/demo"  # where `mmdf demo-data` writes unless told otherwise


def read_labels(path: str | Path, require_target: bool = True) -> pd.DataFrame:
    """Read a label file into a frame with ``video_name`` (and ``target`` as int8).

    Extra columns after the first two are kept as strings. Raises
    :class:`LabelError` listing a handful of offending lines per problem and
    the total count.
    """
    path = Path(path)
    rows = _read_rows(path)
    header, has_target = _check_header(path, rows[0], require_target)
    problems: dict[str, list[str]] = defaultdict(list)
    seen: dict[str, tuple[int, str]] = {}  # case-folded name -> (first line, name as written)
    names, targets, extras = [], [], []
    for line, row in rows[1:]:
        cells = [c.strip() for c in row]
        shown = f"line {line} ({','.join(row)!r})"
        if len(cells) != len(header):
            problems[f"wrong number of columns (expected {len(header)}: {','.join(header)})"].append(shown)
            continue
        _check_name(cells[0], line, shown, seen, problems)
        if has_target:
            if cells[1] not in ("0", "1"):
                problems["target not 0 or 1"].append(shown)
                continue
            targets.append(int(cells[1]))
        names.append(cells[0])
        extras.append(cells[2 if has_target else 1:])
    if problems:
        parts = [f"  {kind}: {list_offenders(items)}" for kind, items in problems.items()]
        total = sum(len(v) for v in problems.values())
        raise LabelError(f"{path}: {total} bad line(s); fix them and run again:\n" + "\n".join(parts))
    frame = pd.DataFrame({NAME_COL: pd.Series(names, dtype=str)})
    if has_target:
        frame[TARGET_COL] = pd.Series(targets, dtype="int8")
    for j, col in enumerate(header[2 if has_target else 1:]):
        frame[col] = [e[j] for e in extras]
    return frame


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of the non-blank lines; a file that is absent, empty or not UTF-8 raises."""
    if not path.is_file():
        hint = ""
        if path.parent.resolve() == Path(DEMO_DATA_ROOT).resolve():
            hint = "; the demo dataset is made by `mmdf demo-data` (or `mmdf demo`)"
        raise LabelError(f"label file not found: {path}{hint}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelError(f"{path}: {not_utf8(data, exc)}; save the file as UTF-8 and run again") from None
    rows = [(i + 1, r) for i, r in enumerate(csv.reader(io.StringIO(text, newline=""))) if any(c.strip() for c in r)]
    if not rows:
        raise LabelError(f"{path}: the file is empty; expected a header 'video_name,target'")
    return rows


def _check_header(path: Path, first: tuple[int, list[str]], require_target: bool) -> tuple[list[str], bool]:
    """(header cells, whether a target column follows the names); a wrong header raises."""
    expected = f"{NAME_COL},{TARGET_COL}" if require_target else NAME_COL
    header_line, header = first
    header = [h.strip() for h in header]
    if header[0] != NAME_COL:
        looks_like_data = header[0].lower().endswith(".mp4")
        raise LabelError(
            f"{path}, line {header_line}: "
            + ("missing header" if looks_like_data else f"unexpected header {','.join(header)!r}")
            + f"; the first line must be '{expected}'"
            + (" (add it above the first clip)" if looks_like_data else "")
        )
    has_target = len(header) > 1 and header[1] == TARGET_COL
    if require_target and not has_target:
        raise LabelError(
            f"{path}, line {header_line}: header {','.join(header)!r} has no '{TARGET_COL}' "
            f"as second column; expected '{expected}'"
        )
    return header, has_target


def _check_name(name: str, line: int, shown: str, seen: dict, problems: dict) -> None:
    """A name must end in .mp4 and differ from every earlier name, case aside.

    Names differing only in case (``a.mp4``, ``A.MP4``) are the same file on
    case-insensitive file systems (macOS, Windows, many shares), so one of
    them would silently take the other's label and features: refused.
    """
    if not name.lower().endswith(".mp4"):
        problems["video_name without '.mp4'"].append(shown)
    folded = name.casefold()
    if folded not in seen:
        seen[folded] = (line, name)
    elif seen[folded][1] == name:
        problems["duplicate video_name"].append(f"line {line} repeats line {seen[folded][0]} ({name})")
    else:
        first_line, first = seen[folded]
        problems["video_names differing only in case (one file on case-insensitive file systems)"].append(
            f"line {line} ({name}) and line {first_line} ({first})"
        )


def pair_with_clips(
    labels: pd.DataFrame, clip_dir: str | Path, labels_path: str | Path, missing: str = "error"
) -> pd.DataFrame:
    """Add each clip's ``path``; names without a file raise, or are flagged with ``missing='keep'``.

    ``missing='keep'`` adds a boolean ``exists`` column instead of raising, so
    preprocessing can record such clips as status ``missing`` rather than drop them.
    """
    if missing not in ("error", "keep"):
        raise ValueError(f"missing must be 'error' or 'keep', got {missing!r}")
    clip_dir = Path(clip_dir)
    if not clip_dir.is_dir():
        raise LabelError(
            f"clip folder not found: {clip_dir} (named for the clips of {labels_path}); "
            "check data.root and the split's clips folder in the config"
        )
    present = {p.name for p in clip_dir.iterdir()}
    out = labels.copy()
    out["path"] = [str(clip_dir / n) for n in out[NAME_COL]]
    exists = out[NAME_COL].isin(present)
    if missing == "error" and not exists.all():
        absent = out.loc[~exists, NAME_COL].tolist()
        raise LabelError(
            f"{labels_path}: {len(absent)} clip(s) named there are not in {clip_dir}: "
            f"{list_offenders(absent)}; restore the files or remove their lines"
        )
    if missing == "keep":
        out["exists"] = exists.to_numpy()
    return out


def load_split(cfg: DataConfig, split: str, missing: str = "error") -> pd.DataFrame:
    """One split's clips: ``split, video_name, [target], path, [exists]``."""
    labels_path, clip_dir = cfg.split_paths(split)
    if labels_path is None:
        raise LabelError(f"the config names no label file for split '{split}'")
    frame = read_labels(labels_path, require_target=split != "test")
    frame = pair_with_clips(frame, clip_dir, labels_path, missing=missing)
    frame.insert(0, "split", split)
    return frame


def available_splits(cfg: DataConfig) -> list[str]:
    """Splits whose label file the config names (train always; val and test when set)."""
    return [s for s in SPLITS if cfg.split_paths(s)[0] is not None]


def load_dataset(cfg: DataConfig, missing: str = "error") -> pd.DataFrame:
    """All configured splits in one frame, train first; ``target`` is NA where unknown."""
    frames = [load_split(cfg, s, missing=missing) for s in available_splits(cfg)]
    frame = pd.concat(frames, ignore_index=True)
    if TARGET_COL in frame:
        frame[TARGET_COL] = frame[TARGET_COL].astype("Int8")
    return frame
