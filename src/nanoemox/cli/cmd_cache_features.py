"""`nanoemox cache-features`: run the frozen encoders once over a manifest's media and store the outputs."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

SHOWN_FAILURES = 20


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "cache-features",
        help="store the frozen encoders' features of every clip of a manifest (resumable; see docs/feature_cache.md)",
    )
    p.add_argument("manifest", help="manifest JSONL whose media are encoded (each unique media item once)")
    p.add_argument("--model", required=True, help="model folder (its encoders and processor settings are used)")
    p.add_argument("--out", required=True, help="cache folder; an existing cache for the same model is extended "
                   "(a damaged index.json is rebuilt from its intact shards)")
    p.add_argument("--data-root", help="folder the media paths are relative to (default: the manifest's folder)")
    p.add_argument("--batch-size", type=int, default=8, help="media encoded together (default 8)")
    p.add_argument("--workers", type=int, default=0, help="decoding processes running beside the encoder (default 0)")
    p.add_argument("--shard-size", type=int, default=256, help="media per shard file (default 256)")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="stored precision (float32 reproduces live features exactly)")
    p.add_argument("--device", help="device for the encoders (default: cuda if available, else cpu)")
    p.set_defaults(func=run)


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    import torch
    from tqdm import tqdm

    from nanoemox.data.manifest import load_manifest
    from nanoemox.features import DTYPES, build_cache
    from nanoemox.model import load_model
    from nanoemox.processor import NanoEmoXProcessor
    from nanoemox.shards import current_shard

    manifest = Path(args.manifest)
    records = load_manifest(manifest)
    root = Path(args.data_root) if args.data_root else manifest.parent
    shard = current_shard()  # one of several processes under `accelerate launch`: each its own GPU
    device = args.device or shard.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.model, device=device)
    processor = NanoEmoXProcessor.from_pretrained(args.model)
    with tqdm(total=0, unit="media", desc="encoding") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        summary = build_cache(
            records, root, model, processor, args.out,
            shard_size=args.shard_size, batch_size=args.batch_size, workers=args.workers,
            dtype=DTYPES[args.dtype], progress=progress,
        )
    if shard.world > 1:
        print(f"process {shard.rank} of {shard.world}: its share of the media below"
              + ("; the main process has folded every share into the cache" if shard.main else ""))
    _print_summary(summary)
    return 1 if summary["failed"] else 0


def _print_summary(summary: dict) -> None:
    for report in summary.get("recovered", []):
        _print_recovery(report)
    print(
        f"{summary['records']} records, {summary['media']} unique media: cached {summary['cached']}, "
        f"skipped {summary['skipped']} (already present), failed {len(summary['failed'])} "
        f"in {summary['seconds']:.1f} s"
    )
    print(f"cache {summary['out_dir']}: {summary['total_cached']} media in total, {len(summary['shards'])} new shard(s)")
    failures = list(summary["failed"].items())
    for key, message in failures[:SHOWN_FAILURES]:
        ids = summary["failed_records"][key]
        more = f" (+{len(ids) - 3} more)" if len(ids) > 3 else ""
        print(f"  failed {key} (records {', '.join(ids[:3])}{more}): {message}")
    if len(failures) > SHOWN_FAILURES:
        print(f"  ... and {len(failures) - SHOWN_FAILURES} more; every failure is listed under 'errors' in index.json")


def _print_recovery(report: dict) -> None:
    """What rebuilding a damaged index did (`IndexRecovery.lines`, see nanoemox.features.recover)."""
    from nanoemox.features.recover import IndexRecovery

    for line in IndexRecovery(**report).lines():
        print(line)
