"""`nanoemox score`: score a predictions JSONL against reference manifests and print the table.

The reference and LLM options, and the building of the extractor and judge from
them, are shared with `nanoemox eval` (`cli.options`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from nanoemox.cli.options import add_reference_options, add_scoring_options, references_from_args, scoring_tools
from nanoemox.eval import BENCHMARKS

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("score", help="score model predictions on a benchmark",
                              description=__doc__.splitlines()[0])
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    p.add_argument("--predictions", required=True, help='JSONL: {"id": ..., "prediction": "<text>"} per line')
    add_reference_options(p)
    p.add_argument("--out", help="directory for score_<benchmark>.json and .md")
    add_scoring_options(p)
    p.set_defaults(func=run)


def _write(out_dir: str, benchmark: str, result: dict, table: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"score_{benchmark}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (out / f"score_{benchmark}.md").write_text(table)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.eval.harness import score_run
    from nanoemox.eval.scoring import load_predictions, markdown_table

    try:
        predictions = load_predictions(args.predictions)
        # Manifests are scored as given; a raw data root gives its test split.
        sets = references_from_args(args, split=None if args.references else "test")
        references = [r for s in sets for r in s.records]
    except (OSError, ValueError) as exc:  # unreadable file, bad manifest or predictions
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not references:
        print("error: no reference records found", file=sys.stderr)
        return 2
    try:
        client, extractor, judge = scoring_tools(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        # As `eval` scores: SynthAffect's ERI without a judge by its offline token-overlap proxy.
        result = score_run(args.benchmark, predictions, references, extractor=extractor, judge=judge)
    finally:
        if client is not None:
            client.close()
    if args.extractor == "llm" and extractor.failures:
        result["extractor_failures"] = extractor.failures
    table = markdown_table(result, args.model_name)
    print(table, end="")
    if args.out:
        _write(args.out, args.benchmark, result, table)
        print(f"wrote {args.out}/score_{args.benchmark}.json and .md")
    return 0
