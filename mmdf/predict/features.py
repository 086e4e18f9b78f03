"""Features of new clips for `mmdf predict`: each branch's own preprocessing, in a cache of predict's own.

A branch learned from features made with *its* run's prepare settings
(``<run>/<branch>/config.yaml``), so new clips are prepared with those, not
with the stack config's. Branches whose settings agree on everything they
share and on the sections they read (``Branch.prepare_keys``: the audio
branch reads ``mel``, the visual one ``faces``) are served by one
preprocessing pass (:class:`PrepareGroup`); others get a pass each.

Features go to ``<cache>/prep-<key>/`` (``<cache>`` defaults to
``<run>/predict_cache``, never the training cache: the key hashes the
feature parameters as in `mmdf prepare`). ``predict_index.jsonl`` there
records each prepared file (resolved path, size and mtime, its manifest row
with feature paths relative to the cache), so a file already scored is not
prepared again until it changes (or its features are deleted); and
``scores/<branch>-<models>.jsonl`` the probability each branch gave it, keyed
also by the size and mtime of the branch's fold files, so a second call on the
same files runs no model either (a retrained branch scores them anew).
With ``share_streams`` (the audit's perturbed copies), ``stream_index.jsonl``
records each half by the digest of the stream it was made from
(:mod:`mmdf.prepare.streams`), so a file whose audio or video stream is a copy
of one prepared before links that half instead of making it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mmdf.files import fsync_path
from mmdf.prepare import runner
from mmdf.prepare.cache import BORROWABLE, cache_root, feature_params
from mmdf.prepare.manifest import assemble_manifest
from mmdf.prepare.row import FEATURE_FILES, KIND_FIELDS, KIND_STATUS, ROW_COLUMNS, plain_record
from mmdf.prepare.streams import stream_keys
from mmdf.train.branches import all_branches, get_branch

log = logging.getLogger(__name__)

INDEX_FILE = "predict_index.jsonl"
STREAM_INDEX_FILE = "stream_index.jsonl"


@dataclass
class PrepareGroup:
    """Branches prepared by one pass: the config that makes their features, and which sections each owns."""

    cfg: object  # a mmdf.run_config.Config whose data.cache_dir is predict's cache
    branches: list[str] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)  # prepare sections some branch of the group reads

    @property
    def root(self) -> Path:
        return cache_root(self.cfg)

    def accepts(self, prepare, keys: tuple[str, ...], sections: set[str]) -> bool:
        """Whether a branch reading ``keys`` of ``prepare`` gets its features from this group's pass."""
        mine, theirs = feature_params(self.cfg.prepare), feature_params(prepare)
        shared = [k for k in mine if k not in sections]
        return all(mine[k] == theirs.get(k) for k in [*shared, *(set(keys) & self.claimed)])

    def take(self, name: str, prepare, keys: tuple[str, ...]) -> None:
        self.cfg.prepare = dataclasses.replace(self.cfg.prepare, **{k: getattr(prepare, k) for k in keys})
        self.branches.append(name)
        self.claimed |= set(keys)


def prepare_groups(branch_cfgs: dict, cache_dir: Path, progress: bool = True) -> list[PrepareGroup]:
    """As few preprocessing passes as the branches' own prepare settings allow (``{branch: Config}``)."""
    sections = {k for b in all_branches().values() for k in b.prepare_keys}
    groups: list[PrepareGroup] = []
    for name, cfg in branch_cfgs.items():
        keys = tuple(get_branch(name).prepare_keys)
        group = next((g for g in groups if g.accepts(cfg.prepare, keys, sections)), None)
        if group is None:
            own = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, cache_dir=str(cache_dir)),
                                      prepare=dataclasses.replace(cfg.prepare, progress=progress))
            group = PrepareGroup(own)
            groups.append(group)
        group.take(name, cfg.prepare, keys)
    for g in groups:
        log.info("predict: branches %s prepared into %s", ", ".join(g.branches), g.root)
    return groups


class JsonlIndex:
    """Entries about files, one JSON line each, appended: resolved path -> (size:mtime, value); the latest wins."""

    def __init__(self, file: Path, wanted: set[str] | None = None):
        self.file = Path(file)
        self.rows: dict[str, tuple[str, object]] = {}
        if self.file.is_file():
            with open(self.file, encoding="utf-8") as fh:
                for line in fh:
                    self._read(line, wanted)

    def _read(self, line: str, wanted: set[str] | None) -> None:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            return  # torn last line of a killed run
        if wanted is None or entry["path"] in wanted:
            self.rows[entry["path"]] = (entry["source"], entry["value"])

    def lookup(self, path: str, source: str):
        """``(True, value)`` where ``path`` has an entry made when the file was as it is now, else ``(False, None)``."""
        found = self.rows.get(path)
        if found is None or not source or found[0] != source:
            return False, None
        return True, found[1]

    def add(self, entries: list[tuple[str, str, object]]) -> None:
        """Append ``(path, source, value)`` entries, on disk before returning."""
        if not entries:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.file, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps({"path": p, "source": s, "value": v}) + "\n" for p, s, v in entries))
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.update({p: (s, v) for p, s, v in entries})
        fsync_path(self.file.parent)


class FeatureIndex(JsonlIndex):
    """The files prepared into one cache root: their manifest records (feature paths relative to the root)."""

    def __init__(self, root: Path, wanted: set[str] | None = None):
        self.root = Path(root)
        super().__init__(self.root / INDEX_FILE, wanted)

    def get(self, path: str, source: str) -> dict | None:
        """The record of ``path`` if it was prepared as it is now and its feature files still exist."""
        found, record = self.lookup(path, source)
        if not found:
            return None
        files = [record.get(c) or "" for c in FEATURE_FILES.values()]
        return record if all((self.root / f).is_file() for f in files if f) else None


def model_fingerprint(branch_dir: Path) -> str:
    """Size and mtime of every file of a branch's folds and its config: a retrained branch scores anew."""
    files = sorted([*Path(branch_dir).glob("fold_*/*"), Path(branch_dir) / "config.yaml"])
    stats = [(str(f.relative_to(branch_dir)), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
    return hashlib.sha1(json.dumps(stats).encode()).hexdigest()[:12]


def score_cache(root: Path, branch: str, branch_dir: Path, wanted: set[str] | None = None) -> JsonlIndex:
    """The probabilities ``branch`` (as trained now) gave the files prepared into ``root``."""
    return JsonlIndex(Path(root) / "scores" / f"{branch}-{model_fingerprint(branch_dir)}.jsonl", wanted)


def _record(row: dict, root: Path) -> dict:
    """A manifest row as a plain record, feature paths relative to ``root`` where they lie under it."""
    record = plain_record({k: row.get(k) for k in ROW_COLUMNS})
    for col in FEATURE_FILES.values():
        f = record.get(col) or ""
        if f and Path(f).is_absolute() and Path(f).resolve().is_relative_to(root.resolve()):
            record[col] = str(Path(f).resolve().relative_to(root.resolve()))
    return record


def prepared_rows(group: PrepareGroup, index: FeatureIndex, paths: list[Path], resolved: list[str],
                  sources: list[str], workers: int | None, streams: StreamIndex | None = None) -> pd.DataFrame:
    """Manifest rows (split ``predict``) of existing ``paths``, in order; only new or changed files are prepared.

    ``resolved``/``sources``: each path resolved, and its size:mtime
    (:func:`mmdf.prepare.cache.source_fingerprint`). With ``streams``, a half
    whose stream was prepared before (in this call or an earlier one) is linked,
    not made again; a file whose stream twin is made in this call waits for it.
    """
    records = [index.get(r, s) for r, s in zip(resolved, sources)]
    todo = [i for i, rec in enumerate(records) if rec is None]

    keys = {i: stream_keys(paths[i], group.cfg.prepare.max_duration) for i in todo} if streams is not None else {}
    for batch in _passes(todo, keys, streams):
        borrow = [streams.lend(keys[i], group.root) if streams is not None else None for i in batch]
        for i, rec in zip(batch, _prepare(group, [paths[i] for i in batch], workers, borrow)):
            records[i] = rec
        index.add([(resolved[i], sources[i], records[i]) for i in batch])
        if streams is not None:
            streams.keep([(keys[i], records[i]) for i in batch])
    clips = pd.DataFrame({"split": "predict", "video_name": [p.name for p in paths],
                          "target": pd.array([pd.NA] * len(paths), dtype="Int8"), "path": resolved})
    return assemble_manifest(clips, records, group.root)


def _prepare(group: PrepareGroup, paths: list[Path], workers: int | None, borrow: list) -> list[dict]:
    fresh = runner.prepare_clips(paths, group.cfg, workers=workers, borrow=borrow).reset_index(drop=True)
    return [_record(fresh.iloc[j].to_dict(), group.root) for j in range(len(paths))]


def _passes(todo: list[int], keys: dict[int, dict], streams: StreamIndex | None) -> list[list[int]]:
    """The files to prepare now, then those whose stream twin is among them (so that they can borrow)."""
    first, later, seen = [], [], set()
    for i in todo:
        mine = set(keys.get(i, {}).values())
        if streams is not None and any(k in seen and streams.half(k) is None for k in mine):
            later.append(i)
        else:
            first.append(i)
            seen |= mine
    return [b for b in (first, later) if b]


class StreamIndex(JsonlIndex):
    """The halves prepared into one cache root, by the digest of the stream each was made from."""

    SOURCE = "v1"

    def __init__(self, root: Path):
        self.root = Path(root)
        super().__init__(self.root / STREAM_INDEX_FILE)

    def half(self, key: str) -> dict | None:
        """What a half made from this stream set in its row (its feature file still there), or None."""
        found, half = self.lookup(key, self.SOURCE)
        if not found:
            return None
        file = half.get(FEATURE_FILES[key.split(":")[0]]) or ""
        return half if not file or (self.root / file).is_file() else None

    def lend(self, keys: dict[str, str], root: Path) -> dict | None:
        """The :attr:`ClipTask.borrow` of a file whose halves have these stream keys."""
        lent = {kind: (str(root), half) for kind, key in keys.items() if (half := self.half(key)) is not None}
        return lent or None

    def keep(self, made: list[tuple[dict, dict]]) -> None:
        """Remember the halves of freshly prepared records whose outcome follows from the stream alone."""
        entries = []
        for keys, record in made:
            for kind, key in keys.items():
                if record.get(KIND_STATUS[kind]) in BORROWABLE[kind] and self.half(key) is None:
                    half = {f: record.get(f) for f in KIND_FIELDS[kind]}
                    entries.append((key, self.SOURCE, {**half, "error": record.get("error") or ""}))
        self.add(entries)
