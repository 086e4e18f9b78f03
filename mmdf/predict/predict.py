"""Scoring new clips with a finished run: screen, prepare (per branch), score, stack, calibrate, explain.

The run is loaded once per call (:class:`Predictor`): its stacker
(``stack/stacker.json``), calibration and operating thresholds
(``stack/calibration.json``), and each branch's fold models (its folder is
stored relative to the run, so a moved run works). Each branch's clips are
prepared with that branch's own prepare settings into predict's own cache,
and a file prepared before (same size and mtime) is not prepared again (see
:mod:`mmdf.predict.features`).

Clips go in chunks of ``batch_size``; each chunk's rows are appended to the
output file as soon as they are scored, so a killed call resumes with
``resume=True`` (see :mod:`mmdf.predict.output`). Every input gets a row, in
input order. Where no branch could score a clip (missing, empty, corrupt,
unsupported, or neither modality usable) ``prob`` is empty and ``status``
says why: `mmdf predict` makes up no number (the challenge submission of
`mmdf stack` keeps its metadata fallback). Columns::

    path, video_name      the input and its file name
    prob                  calibrated probability of a deepfake
    decision              fake / real at the chosen FPR's threshold
    status, reason        manifest status (or why not scored); which branch pushed the score most
    <branch>_prob         each branch's probability (empty where it could not use the clip)
    <branch>_contrib      its additive contribution to the stacked score (unit in the reason)
    metadata_contrib      contribution of the other stacking features (branches scored, clip metadata)
    score                 the stacked score before calibration (the submission's scale)
    threshold, target_fpr the score threshold used and the OOF false-positive rate it was set for
    n_branches_scored, error
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mmdf.errors import MmdfError
from mmdf.predict.explain import branch_contributions, reasons
from mmdf.predict.explainer import ExplainWriter
from mmdf.predict.features import FeatureIndex, StreamIndex, prepare_groups, prepared_rows, score_cache
from mmdf.predict.inputs import collect_inputs, screen  # noqa: F401 - collect_inputs: public here
from mmdf.predict.output import ScoresWriter, format_for, tidy
from mmdf.prepare.cache import source_fingerprint
from mmdf.prepare.row import KIND_FIELDS
from mmdf.run_config import load_config
from mmdf.stack.calibration import apply_calibration, load_calibration, pick_threshold
from mmdf.stack.saved import load_stacker, stacker_features
from mmdf.train.branches import get_branch

log = logging.getLogger(__name__)

PREDICT_CACHE = "predict_cache"


def load_run(run_dir: str | Path):
    """(config, stacker) of a finished run; refuses a run that has not been stacked."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "stack" / "config.yaml"
    if not cfg_path.is_file():
        raise MmdfError(f"{run_dir} is not a stacked run ({cfg_path} is absent); "
                        "run `mmdf stack --config ...` for it first")
    return load_config(cfg_path), load_stacker(run_dir / "stack")


def output_columns(branches: list[str]) -> list[str]:
    return ["path", "video_name", "prob", "decision", "status", "reason", *(f"{b}_prob" for b in branches),
            *(f"{b}_contrib" for b in branches), "metadata_contrib", "score", "threshold", "target_fpr",
            "n_branches_scored", "error"]


class Predictor:
    """A finished run loaded once: branches, their preprocessing passes, stacker, calibration, threshold.

    ``expected``: the paths this call will score, so that only their entries of the feature index are held.
    ``share_streams``: reuse a half whose stream another file prepared before had (see
    :mod:`mmdf.predict.features`); it costs a read of every new file, and pays where files share streams.
    """

    def __init__(self, run_dir: str | Path, cache_dir: str | Path | None = None, fpr: float | None = None,
                 progress: bool = True, expected: Iterable[Path] | None = None, share_streams: bool = False,
                 engine: tuple[str | None, str | None] = (None, None)):
        self.dir = Path(run_dir)
        _, self.stacker = load_run(self.dir)
        self.calibration = load_calibration(self.dir / "stack")
        if self.calibration is None:
            raise MmdfError(f"{self.dir / 'stack'} has no calibration.json (stacked by an older mmdf); "
                            "run `mmdf stack --force --config ...` for this run")
        self.point = pick_threshold(self.calibration, fpr)
        self.branches = list(self.stacker["branches"])
        dirs = {b: self.dir / rel for b, rel in self.stacker["branches"].items()}
        self.trained = {b: get_branch(b).trained(d, load_config(d / "config.yaml"))  # fold models loaded once
                        for b, d in dirs.items()}
        configs = {b: load_config(d / "config.yaml") for b, d in dirs.items()}
        self.groups = prepare_groups(configs, Path(cache_dir) if cache_dir else self.dir / PREDICT_CACHE, progress)
        for g in self.groups:  # where the clips are prepared: not in the cache key, so the run's cache stands
            g.cfg.prepare.engine = engine[0] or g.cfg.prepare.engine
            g.cfg.prepare.address = engine[1] or g.cfg.prepare.address
        self.group_of = {b: g for g in self.groups for b in g.branches}
        wanted = {str(Path(p).resolve()) for p in expected} if expected is not None else None
        self.indexes = {id(g): FeatureIndex(g.root, wanted) for g in self.groups}  # only these files' rows
        self.streams = {id(g): StreamIndex(g.root) if share_streams else None for g in self.groups}
        self.scores = {b: score_cache(self.group_of[b].root, b, d, wanted) for b, d in dirs.items()}
        for trained in self.trained.values():
            if hasattr(trained, "cfg"):  # the branches' own progress bars follow ours
                trained.cfg.train.progress = trained.cfg.train.progress and progress
        self.columns = output_columns(self.branches)
        # the manifest's per-modality statuses, for reasons that name every unusable modality
        self.status_cols = list(dict.fromkeys(get_branch(b).status_col for b in self.branches))
        self.modality_cols = [*self.status_cols, "frames_sampled"]
        self.seconds = {"prepare": 0.0, "branches": 0.0, "stack": 0.0}

    def score(self, paths: list[Path], workers: int | None = None) -> pd.DataFrame:
        """One row per path, in order, with the columns of :func:`output_columns`."""
        screened = [screen(Path(p)) for p in paths]
        todo = [i for i, s in enumerate(screened) if s.status is None]
        parts = [pd.DataFrame({"status": [s.status for s in screened if s.status],
                               "error": [s.error for s in screened if s.status], "n_branches_scored": 0},
                              index=[i for i, s in enumerate(screened) if s.status])]
        if todo:
            parts.append(self._score_prepared([Path(paths[i]) for i in todo], workers).set_axis(todo))
        frame = pd.DataFrame({"path": [str(p) for p in paths], "video_name": [Path(p).name for p in paths]})
        frame = frame.join(pd.concat([p for p in parts if len(p)]).sort_index())
        frame["reason"] = reasons(frame.reindex(columns=[*self.columns, *self.modality_cols]), self.branches,
                                  self.stacker["estimator"].contribution_unit, self.status_cols)
        return tidy(frame.reindex(columns=self.columns))

    def segments(self, paths: list[Path]) -> list[dict]:
        """Per path (each scored before by :meth:`score`), ``{branch: Segments}`` of the branches that score
        parts of a clip in time and could use it (see :meth:`mmdf.train.branches.base.Branch.segments`)."""
        paths = [Path(p) for p in paths]
        resolved, sources = [str(p.resolve()) for p in paths], [source_fingerprint(p) for p in paths]
        out: list[dict] = [{} for _ in paths]
        for b in self.branches:
            branch, group = get_branch(b), self.group_of[b]
            if not branch.modality or not paths:
                continue
            rows = prepared_rows(group, self.indexes[id(group)], paths, resolved, sources, None,
                                 self.streams[id(group)])  # prepared by score(): read from the index
            for i in np.flatnonzero(branch.usable(rows)):
                found = branch.segments(self.trained[b], rows.iloc[i])
                if found is not None:
                    out[i][b] = found
        return out

    def _score_prepared(self, paths: list[Path], workers: int | None) -> pd.DataFrame:
        t0 = time.perf_counter()
        resolved = [str(p.resolve()) for p in paths]
        sources = [source_fingerprint(p) for p in paths]
        rows = {id(g): prepared_rows(g, self.indexes[id(g)], paths, resolved, sources, workers, self.streams[id(g)])
                for g in self.groups}
        t1 = time.perf_counter()
        keys = [f"{i:09d}" for i in range(len(paths))]  # names may repeat across folders
        preds = {b: pd.DataFrame({"video_name": keys, "prob": self._branch_probs(b, rows, resolved, sources)})
                 for b in self.branches}
        t2 = time.perf_counter()
        manifest = self._combined_rows(rows)
        out = self._stack(preds, manifest.assign(video_name=keys, split="predict"))
        for col in ["status", "error", *self.modality_cols]:
            out[col] = manifest[col].to_numpy() if col in manifest else np.nan
        self.seconds["prepare"] += t1 - t0
        self.seconds["branches"] += t2 - t1
        self.seconds["stack"] += time.perf_counter() - t2
        return out

    def _branch_probs(self, b: str, rows: dict, resolved: list[str], sources: list[str]) -> np.ndarray:
        """Branch ``b``'s probability per clip: from its score cache, else from its fold models (then cached)."""
        cache = self.scores[b]
        found = [cache.lookup(r, s) for r, s in zip(resolved, sources)]
        prob = np.array([np.nan if v is None else v for _, v in found], dtype=float)
        todo = np.array([not hit for hit, _ in found])
        if todo.any():
            t0 = time.perf_counter()
            mine = rows[id(self.group_of[b])][todo]
            pred = self.trained[b].score(mine).reset_index(drop=True)
            self.seconds[b] = self.seconds.get(b, 0.0) + time.perf_counter() - t0
            if len(pred) != len(mine):
                raise RuntimeError(f"branch {b} returned {len(pred)} rows for {len(mine)} clips")
            prob[todo] = pred["prob"].to_numpy(dtype=float)
            cache.add([(r, s, None if np.isnan(p) else float(p))
                       for r, s, p in zip(np.array(resolved)[todo], np.array(sources)[todo], prob[todo])])
        return prob

    def _combined_rows(self, rows: dict) -> pd.DataFrame:
        """One manifest row per clip: the first pass's, each branch's own fields from its own pass."""
        combined = rows[id(self.groups[0])].copy()
        for b in self.branches:
            own = rows[id(self.group_of[b])]
            for col in [c for k in get_branch(b).prepare_keys for c in KIND_FIELDS.get(k, ())]:
                combined[col] = own[col].to_numpy()
        return combined

    def _stack(self, preds: dict, manifest: pd.DataFrame) -> pd.DataFrame:
        """Stacked score, calibrated probability, decision and contributions; nothing where no branch scored."""
        X = stacker_features(self.stacker, preds, manifest, split="predict")
        n = X["n_branches_scored"].to_numpy().astype(int)
        est = self.stacker["estimator"]
        members = est.member_probas(X)  # each fold model's score: each has its own calibrator
        score = np.where(n > 0, np.clip(members.mean(axis=0), 0, 1), np.nan)
        out = branch_contributions(est, X, self.branches).reset_index(drop=True)
        out.loc[n == 0, :] = np.nan
        threshold = self.point["threshold"]
        out = out.assign(prob=np.where(n > 0, apply_calibration(self.calibration["calibration"], members), np.nan),
                         score=score,
                         decision=np.where(np.isnan(score), None, np.where(score >= threshold, "fake", "real")),
                         threshold=np.where(np.isnan(score), np.nan, threshold),
                         target_fpr=np.where(np.isnan(score), np.nan, self.point["target_fpr"]),
                         n_branches_scored=n)
        for b in self.branches:
            out[f"{b}_prob"] = preds[b]["prob"].to_numpy()
        return out


def predict_clips(run_dir: str | Path, inputs: Iterable[str | Path], batch_size: int = 256,
                  workers: int | None = None, *, out: str | Path | None = None, fmt: str | None = None,
                  resume: bool = False, cache_dir: str | Path | None = None, fpr: float | None = None,
                  recursive: bool = False, progress: bool = True, stdin=None,
                  share_streams: bool = False, segments: str | Path | None = None,
                  explain: str | Path | None = None, segment_labels: str | Path | None = None,
                  engine: tuple[str | None, str | None] = (None, None)) -> pd.DataFrame:
    """Score clips with a finished run; one row per input, in input order (columns: see the module docstring).

    ``out``: the scores file, appended chunk by chunk (``fmt`` csv or json
    lines); ``resume`` keeps the rows it already holds for the same inputs and
    scores the rest. ``cache_dir``: predict's feature cache (default
    ``<run>/predict_cache``). ``fpr``: which stored operating point decides.
    ``share_streams``: see :class:`Predictor`. ``segments``: write each scored clip's parts in time to
    this CSV; ``explain``: write a page per scored clip and an index to this folder (and its
    ``segments.csv``); ``segment_labels``: a table of manipulated spans, for the segment-level AUC
    (see :mod:`mmdf.predict.explainer`).
    ``engine``: (``prepare.engine``, ``prepare.address``) to prepare with instead of the run's (None: the
    run's), e.g. ``("ray", "auto")``.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise MmdfError(f"batch size must be at least 1, got {batch_size}")
    paths = collect_inputs(inputs, recursive=recursive, stdin=stdin)
    predictor = Predictor(run_dir, cache_dir=cache_dir, fpr=fpr, progress=progress, expected=paths,
                          share_streams=share_streams, engine=engine)
    writer = ScoresWriter(out, format_for(out, fmt), predictor.columns) if out is not None else None
    parts = [writer.open([str(p) for p in paths], resume)] if writer is not None else []
    start = len(parts[0]) if parts else 0
    explainer = None
    if segments is not None or explain is not None:
        explainer = ExplainWriter(predictor, explain, segments, segment_labels)
        if start:
            explainer.add(parts[0])  # the rows --resume kept
    t0 = time.perf_counter()
    with tqdm(total=len(paths), initial=start, unit="clip", desc="predict", disable=not progress) as bar:
        for at in range(start, len(paths), batch_size):
            part = predictor.score(paths[at:at + batch_size], workers)
            if writer is not None:
                writer.write(part)
            if explainer is not None:
                explainer.add(part)
            parts.append(part)
            bar.update(len(part))
    _log_done(predictor, len(paths) - start, time.perf_counter() - t0)
    if explainer is not None:
        explainer.close()
    return pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True).reindex(columns=predictor.columns)


def _log_done(predictor: Predictor, n: int, seconds: float) -> None:
    s = predictor.seconds
    per_branch = ", ".join(f"{b} {s[b]:.1f} s" for b in predictor.branches if b in s)
    log.info("predict: %d clip(s) in %.1f s (%.2f clips/s; prepare %.1f s, branches %.1f s%s, stack %.1f s)",
             n, seconds, n / seconds if seconds > 0 else float("nan"), s["prepare"], s["branches"],
             f" ({per_branch})" if per_branch else "", s["stack"])
