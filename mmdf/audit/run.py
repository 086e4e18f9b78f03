"""The audit of a finished run: perturb the split's clips, score them as `mmdf predict` does, compare.

Both sides go through :func:`mmdf.predict.predict.predict_clips`, the unperturbed
clips included, so a change in the table is the perturbation's and not a second
implementation's. Work is cached per perturbation (see :mod:`mmdf.audit.cache`):
an interrupted audit resumes, a finished perturbation is not redone, and a larger
``max_clips`` scores only the clips it adds.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmdf.audit.cache import AuditCache
from mmdf.audit.config import BASELINE, AuditConfig
from mmdf.audit.perturb import apply_perturbation
from mmdf.audit.probes import cue_table, probe_aucs, warning_lines
from mmdf.audit.report import AuditSummary, plot_audit, write_csv, write_markdown
from mmdf.audit.table import audit_table, status_counts
from mmdf.data.labels import load_split
from mmdf.errors import MmdfError
from mmdf.predict.predict import predict_clips
from mmdf.run_config import load_config
from mmdf.stack.audit_link import link_from_report, run_key

log = logging.getLogger(__name__)


@dataclass
class AuditResult:
    """The tables of an audit and where its files are."""

    table: pd.DataFrame
    probes: pd.DataFrame
    warnings: list[str]
    files: dict[str, Path]
    seconds: float


def audit_clips(run_dir: Path, split: str) -> pd.DataFrame:
    """``video_name, target, path`` of a labelled split of the run's data config."""
    cfg_path = run_dir / "stack" / "config.yaml"
    if not cfg_path.is_file():
        raise MmdfError(f"{run_dir} is not a stacked run ({cfg_path} is absent); run `mmdf stack` for it first")
    clips = load_split(load_config(cfg_path).data, split, missing="keep")
    if "target" not in clips:
        raise MmdfError(f"split '{split}' has no labels; the audit needs a labelled split (e.g. --split val)")
    return clips[["video_name", "target", "path"]].reset_index(drop=True)


def select_clips(clips: pd.DataFrame, max_clips: int | None, seed: int) -> pd.DataFrame:
    """A stratified, seeded subset of ``max_clips`` clips (all of them when fewer), in the split's order."""
    if max_clips is None or max_clips >= len(clips):
        return clips
    from sklearn.model_selection import train_test_split

    y = clips["target"].to_numpy()
    stratify = y if np.bincount(y.astype(int), minlength=2).min() >= 2 else None
    keep, _ = train_test_split(np.arange(len(clips)), train_size=max_clips, stratify=stratify, random_state=seed)
    return clips.iloc[np.sort(keep)].reset_index(drop=True)


def perturb_clips(name: str, clips: pd.DataFrame, cache: AuditCache, config: AuditConfig) -> pd.DataFrame:
    """``video_name, input, perturb_status, perturb_note``: each clip perturbed into the cache (or skipped)."""
    from tqdm.auto import tqdm

    if name == BASELINE:
        return pd.DataFrame({"video_name": clips["video_name"], "input": clips["path"],
                             "perturb_status": "ok", "perturb_note": ""})
    dst = [cache.clip_path(name, v) for v in clips["video_name"]]
    with ThreadPoolExecutor(config.jobs) as pool:
        results = list(tqdm(pool.map(apply_perturbation, [name] * len(dst), clips["path"], dst), total=len(dst),
                            desc=f"perturb {name}", unit="clip", disable=not config.progress, leave=False))
    out = pd.DataFrame(results, columns=["perturb_status", "perturb_note"])
    out.insert(0, "video_name", clips["video_name"].to_numpy())
    out.insert(1, "input", [str(p) for p in dst])
    for video, (status, note) in zip(out["video_name"], results):
        if status == "failed":
            log.warning("audit: %s failed on %s: %s", name, video, note)
    return out


def score(run_dir: Path, paths: list[str], config: AuditConfig) -> pd.DataFrame:
    """``predict_clips`` on ``paths`` (the one scoring route of the project).

    Its feature cache goes under ``audit/cache/features`` (so that the audit's
    perturbed copies stay out of the run's own predict cache); a perturbation
    copies the stream it leaves alone, so that half's features are shared with
    the unperturbed clip's (``share_streams``), not made again.
    """
    return predict_clips(run_dir, paths, batch_size=config.batch_size, workers=config.workers,
                         cache_dir=AuditCache(run_dir / "audit" / "cache", config.split).features,
                         progress=config.progress, share_streams=True, engine=(config.engine, config.address))


def score_all(run_dir: Path, done: dict[str, pd.DataFrame], config: AuditConfig) -> dict[str, pd.DataFrame]:
    """predict's rows for the ``ok`` clips of every perturbation, from one ``predict_clips`` call.

    One call loads the run and starts its worker pools once for all the
    perturbations; predict's own caches (features and branch scores per file)
    make an interrupted call cheap to redo.
    """
    ok = {n: d.loc[d["perturb_status"] == "ok", "input"].tolist() for n, d in done.items()}
    inputs = [p for paths in ok.values() for p in paths]
    scored = score(run_dir, inputs, config).drop(columns=["video_name", "path"]) if inputs else pd.DataFrame()
    out, at = {}, 0
    for name, paths in ok.items():
        out[name] = scored.iloc[at:at + len(paths)].reset_index(drop=True)
        at += len(paths)
    return out


def assemble(done: pd.DataFrame, scored: pd.DataFrame, baseline: pd.DataFrame | None) -> pd.DataFrame:
    """A perturbation's rows in ``done``'s order: predict's for ``ok`` clips, the unperturbed scores for
    ``unchanged`` ones (the same file would score the same), none for ``failed`` ones."""
    ok = done["perturb_status"] == "ok"
    parts = [pd.concat([done[ok].reset_index(drop=True), scored], axis=1)]
    same = done[done["perturb_status"] == "unchanged"]
    if len(same):
        if baseline is None:
            raise RuntimeError("unchanged clips need the unperturbed scores first")
        kept = baseline.set_index("video_name").drop(columns=["input", "perturb_status", "perturb_note"])
        parts.append(same.join(kept, on="video_name"))
    parts.append(done[done["perturb_status"] == "failed"].assign(status="", error=""))
    merged = pd.concat([p for p in parts if len(p)], ignore_index=True)
    return done[["video_name"]].merge(merged, on="video_name", how="left")


def all_scores(run_dir: Path, clips: pd.DataFrame, config: AuditConfig) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Scores per perturbation, the unperturbed first; and the names found whole in the cache."""
    from tqdm.auto import tqdm

    cache = AuditCache(run_dir / "audit" / "cache", config.split)
    cache.check_run(run_key(run_dir), force=config.force)
    names = [BASELINE, *config.perturbations]
    cached = {n: cache.read_scores(n) for n in names}
    todo = {n: clips if c is None else clips[~clips["video_name"].isin(c["video_name"])] for n, c in cached.items()}
    pending = [n for n in names if len(todo[n])]
    done = {n: perturb_clips(n, todo[n], cache, config)
            for n in tqdm(pending, desc="perturb", unit="perturbation", disable=not config.progress)}
    scored = score_all(run_dir, done, config)
    scores = {}
    for name in names:
        rows = cached[name]
        if name in done:
            fresh = assemble(done[name], scored[name], scores.get(BASELINE))
            rows = fresh if rows is None else pd.concat([rows, fresh], ignore_index=True)
            cache.write_scores(name, rows)
        scores[name] = clips[["video_name"]].merge(rows, on="video_name", how="left", validate="one_to_one")
    log.info("audit: %d perturbation(s) scored, %d taken from the cache", len(pending), len(names) - len(pending))
    return scores, [n for n in names if n not in done]


def probe_split(run_dir: Path, clips: pd.DataFrame, config: AuditConfig) -> pd.DataFrame:
    """The shortcut probes' AUCs; each clip's cues are cached by path in ``audit/cache/cues.csv``."""
    path = run_dir / "audit" / "cache" / "cues.csv"
    cached = pd.read_csv(path, dtype={"video_name": str, "path": str}) if path.is_file() else None
    todo = clips if cached is None else clips[~clips["path"].isin(cached["path"])]
    if len(todo):
        fresh = cue_table(todo["path"], todo["video_name"], progress=config.progress).assign(path=todo["path"].tolist())
        cached = fresh if cached is None else pd.concat([cached, fresh], ignore_index=True)
        write_csv(cached, path)
    cues = clips[["path"]].merge(cached.drop(columns="video_name"), on="path", how="left", validate="one_to_one")
    return probe_aucs(cues.drop(columns="path"), clips["target"], warn_at=config.warn_at)


def run_audit(run_dir: str | Path, config: AuditConfig | None = None) -> AuditResult:
    """Audit a finished run: the perturbation table, the plot, the shortcut probes; files under ``audit/``."""
    start = time.perf_counter()
    run_dir, config = Path(run_dir), config or AuditConfig()
    split = audit_clips(run_dir, config.split)
    clips = select_clips(split, config.max_clips, config.seed)
    log.info("audit: %d clips of split %s, %d perturbation(s)", len(clips), config.split, len(config.perturbations))
    scores, reused = all_scores(run_dir, clips, config)
    table = audit_table(scores, clips["target"])
    probes = probe_split(run_dir, clips, config)
    warnings = warning_lines(probes, config.warn_at)
    for line in warnings:
        log.warning("audit: %s", line)
    out = run_dir / "audit"
    files = {"csv": write_csv(table.assign(split=config.split), out / "audit.csv"),
             "probes": write_csv(probes, out / "probes.csv"), "png": plot_audit(table, out / "audit.png")}
    summary = AuditSummary(experiment=run_dir.name, split=config.split, n_clips=len(clips),
                           n_fake=int(clips["target"].sum()), n_split=len(split), seed=config.seed,
                           seconds=time.perf_counter() - start, reused=reused, warnings=warnings)
    files["md"] = write_markdown(out / "audit.md", summary, table, probes, status_counts(scores), files["png"])
    if link_from_report(run_dir):
        files["report"] = run_dir / "report.md"
    return AuditResult(table, probes, warnings, files, summary.seconds)
