"""`nanoemox eval`: run a model on a benchmark, resumably, then score it and write tables and figures.

Under `accelerate launch --num_processes N -m nanoemox eval ...` the records are split across
the N processes and the main one merges and scores (`nanoemox.eval.shards`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from nanoemox.cli.options import (
    UsageError, add_decoding_arguments, add_reference_options, add_scoring_options, decoding_from_args,
    references_from_args, scoring_tools,
)
from nanoemox.eval import BENCHMARKS

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="run a model on a benchmark and score it",
                              description=__doc__.splitlines()[0])
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    add_reference_options(p)
    p.add_argument("--media-root", help="folder the --references media paths are relative to "
                   "(default: each manifest's folder)")
    p.add_argument("--model", required=True, help="model folder (config.json + weights)")
    p.add_argument("--out", required=True, help="output folder; re-running with it resumes the run")
    p.add_argument("--split", default="test", choices=("train", "dev", "test"))
    p.add_argument("--limit", type=int, help="only the first N samples (smoke runs)")
    gen = p.add_argument_group("generation")
    gen.add_argument("--batch-size", type=int, default=8)
    gen.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default: cuda when available)")
    gen.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                     help="auto (default): bfloat16 on GPUs and CPUs that compute it natively, else float32")
    gen.add_argument("--decode", choices=("generate", "score"), default="generate",
                     help="score: rank the candidate labels of MSA/MER/MIR samples instead of generating")
    add_decoding_arguments(gen)
    p.add_argument("--allow-random-backbones", action="store_true",
                   help="evaluate a non-tiny model whose frozen backbones include random weights (refused otherwise)")
    p.add_argument("--no-plots", action="store_true", help="skip the confusion-matrix PNGs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scoring_options(p)
    p.set_defaults(func=run)


def _progress_bar(total: int, disabled: bool):
    # imported when the command runs, not at every start of the command line
    from tqdm import tqdm

    return tqdm(total=total, desc="eval", unit="sample", disable=disabled, dynamic_ncols=True)


def run(args: argparse.Namespace) -> int:
    from nanoemox.eval.harness import pending, run_benchmark  # torch and the model code: only when it runs

    if args.limit is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        decoding = decoding_from_args(args)
        sets = references_from_args(args, split=args.split, media_root=args.media_root)
        todo = pending(sets, args.out, limit=args.limit)
        client, extractor, judge = scoring_tools(args)
    except (OSError, ValueError, UsageError) as exc:  # missing folder, bad manifest, LLM options absent
        print(f"error: {exc}", file=sys.stderr)
        return 2
    processes, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    # Under `accelerate launch` every process predicts its share; the main one shows its own progress.
    bar = _progress_bar(-(-todo // processes), args.no_progress or rank > 0)
    try:
        result = run_benchmark(
            args.benchmark, args.model, sets, out_dir=args.out, limit=args.limit, progress=bar.update,
            batch_size=args.batch_size, decoding=decoding, device=args.device, dtype=args.dtype, decode=args.decode,
            extractor=extractor, judge=judge, model_name=args.model_name, plots=not args.no_plots,
            allow_random_backbones=args.allow_random_backbones)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
        if client is not None:
            client.close()
    if "table" not in result:  # another process than the main one: it merges, scores and reports
        print(f"process {result['rank']} of {result['processes']}: predicted {result['predicted']} samples "
              f"in {result['inference_seconds']:.1f} s", file=sys.stderr)
        return 0
    print(result["table"], end="")
    figures = 0 if args.no_plots else len(result["confusion"])
    print(f"wrote {args.out}/results.json, results.md, predictions.jsonl"
          + (f" and {figures} confusion figure(s)" if figures else ""))
    return 0
