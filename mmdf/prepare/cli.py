"""`mmdf prepare`: preprocess clips into cached mel spectrograms and face crops."""

from __future__ import annotations

import argparse

from mmdf.config import add_config_arguments
from mmdf.errors import MmdfError
from mmdf.prepare.cache import cache_root
from mmdf.prepare.runner import merge_shards, prepare_dataset
from mmdf.run_config import config_from_args

HELP = "preprocess clips into cached mel spectrograms and face crops"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--shard", metavar="i/N", default=None,
        help="process only shard i of N (0-based), e.g. one task of a cluster array job; "
        "then run `mmdf prepare --merge` once all shards are done",
    )
    parser.add_argument("--merge", action="store_true", help="join the shards' results into the manifest")
    parser.add_argument("--force", action="store_true", help="redo clips that are already prepared")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default prepare.workers; 0 = all cores)")
    add_engine_arguments(parser)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine`` and ``--address``: where the clips are prepared (also for `mmdf predict` and `mmdf audit`)."""
    parser.add_argument("--engine", choices=("local", "ray"), default=None,
                        help="local worker processes (default) or Ray tasks on a cluster (pip install 'mmdf[ray]')")
    parser.add_argument("--address", default=None,
                        help="the Ray cluster to join (e.g. auto, or head-node:6379; implies --engine ray); "
                             "default with --engine ray: start a Ray on this machine")


def engine_of(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(engine, address) of the command line (None where not given); an address needs the Ray engine."""
    if args.address and args.engine not in (None, "ray"):
        raise MmdfError("--address names a Ray cluster: use it with --engine ray")
    return ("ray" if args.address else args.engine), args.address


def apply_engine(prepare_cfg, args: argparse.Namespace) -> None:
    """The command line's ``--engine`` / ``--address`` over a prepare config."""
    engine, address = engine_of(args)
    prepare_cfg.engine = engine or prepare_cfg.engine
    prepare_cfg.address = address or prepare_cfg.address


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.workers is not None:
        cfg.prepare.workers = args.workers
    apply_engine(cfg.prepare, args)
    if args.merge:
        if args.shard:
            raise MmdfError("--merge joins all shards; do not pass --shard with it")
        manifest = merge_shards(cfg)
    else:
        manifest = prepare_dataset(cfg, shard=args.shard, force=args.force)
    counts = manifest["status"].value_counts().to_dict()
    print(f"{len(manifest)} clips: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if not args.shard or args.shard.endswith("/1") or args.merge:
        print(f"manifest: {cache_root(cfg) / 'manifest.parquet'}")
    return 0
