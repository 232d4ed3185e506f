"""`nanoemox score`: score a predictions JSONL against reference manifests and print the table.

The reference and LLM options, and the building of the extractor and judge from
them, are shared with `nanoemox eval` (`add_reference_options`,
`add_scoring_options`, `references_from_args`, `scoring_tools`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_reference_options(p: argparse.ArgumentParser) -> None:
    """--references MANIFEST (repeatable) or --data-root DIR, exactly one of them."""
    refs = p.add_mutually_exclusive_group(required=True)
    refs.add_argument("--references", action="append", metavar="MANIFEST",
                      help="reference manifest (repeat for several, e.g. the nine MER-UniBench sets)")
    refs.add_argument("--data-root", help="raw dataset folder, converted on the fly; for mer-unibench the "
                      "folder holding the nine sets as downloaded (mer2023-dataset-process/, meld-process/, ..., "
                      "ovmerdplus-process/, or MER2023/, MELD/, ...; absent sets are listed and skipped); for "
                      "synthaffect a SynthAffect folder")


def add_scoring_options(p: argparse.ArgumentParser) -> None:
    """Table label, emotion-word extractor, EMER judge prompts and the LLM endpoint."""
    from nanoemox.eval import DEFAULT_API_KEY_ENV  # light import: every CLI start runs register()

    p.add_argument("--model-name", default="Ours", help="row label in the table")
    p.add_argument("--extractor", choices=("builtin", "llm"), default="builtin",
                   help="emotion-word extractor for MER-UniBench (llm needs --llm-url)")
    p.add_argument("--extract-prompt", help="prompt template file for the LLM extractor ($text placeholder)")
    p.add_argument("--judge-prompt", action="append", default=[], metavar="STEP=PATH",
                   help="replace an EMER judge template: clue_summary, clue_score, label_extract, label_score")
    llm = p.add_argument_group("LLM endpoint (OpenAI-compatible chat completions)")
    llm.add_argument("--llm-url", help="API base URL, e.g. http://127.0.0.1:8000/v1")
    llm.add_argument("--llm-model", help="model name sent to the endpoint")
    llm.add_argument("--llm-api-key-env", default=DEFAULT_API_KEY_ENV,
                     help="environment variable holding the API key (default %(default)s)")
    llm.add_argument("--llm-cache", help="reply cache directory (default: <out>/llm_cache if --out)")
    llm.add_argument("--llm-concurrency", type=int, default=4)
    llm.add_argument("--llm-timeout", type=float, default=60.0, help="seconds per request")
    llm.add_argument("--llm-retries", type=int, default=4)


def register(subparsers: argparse._SubParsersAction) -> None:
    from nanoemox.eval import BENCHMARKS  # light import: every CLI start runs register()

    p = subparsers.add_parser("score", help="score model predictions on a benchmark",
                              description=__doc__.splitlines()[0])
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    p.add_argument("--predictions", required=True, help='JSONL: {"id": ..., "prediction": "<text>"} per line')
    add_reference_options(p)
    p.add_argument("--out", help="directory for score_<benchmark>.json and .md")
    add_scoring_options(p)
    p.set_defaults(func=run)


def references_from_args(args: argparse.Namespace, split: str | None = "test",
                         media_root: str | None = None) -> list:
    """ReferenceSets from --references (filtered by `split` unless None) or --data-root (`split`)."""
    from nanoemox.eval.harness import load_references

    if args.references:
        return load_references(args.benchmark, manifests=args.references, split=split, media_root=media_root)
    return load_references(args.benchmark, data_root=args.data_root, split=split)


def _client(args: argparse.Namespace):
    from nanoemox.eval.llm import LLMClient, LLMConfig

    if not (args.llm_url and args.llm_model):
        return None
    cache = args.llm_cache or (os.path.join(args.out, "llm_cache") if args.out else None)
    return LLMClient(LLMConfig(
        url=args.llm_url, model=args.llm_model, api_key_env=args.llm_api_key_env,
        timeout_s=args.llm_timeout, max_retries=args.llm_retries,
        concurrency=args.llm_concurrency, cache_dir=cache,
    ))


def _judge_templates(pairs: list[str]) -> dict[str, str]:
    templates = {}
    for pair in pairs:
        key, sep, path = pair.partition("=")
        if not sep or not path:
            raise SystemExit(f"--judge-prompt expects STEP=PATH, got {pair!r}")
        templates[key.strip()] = path
    return templates


def scoring_tools(args: argparse.Namespace):
    """(client, extractor, judge) from the scoring options; ValueError when an LLM is needed but absent.

    The caller closes the client (None when no endpoint was given).
    """
    from nanoemox.eval.extract import EmotionExtractor, LLMExtractor
    from nanoemox.eval.judge import EmerJudge

    client = _client(args)
    needs_llm = args.extractor == "llm" or args.benchmark == "emer"
    if needs_llm and client is None:
        raise ValueError(f"{'--extractor llm' if args.extractor == 'llm' else 'emer'} needs --llm-url and --llm-model")
    try:
        extractor = (LLMExtractor(client, args.extract_prompt or "extract_emotions")
                     if args.extractor == "llm" else EmotionExtractor())
        judge = EmerJudge(client, _judge_templates(args.judge_prompt)) if client is not None else None
    except BaseException:
        if client is not None:
            client.close()
        raise
    return client, extractor, judge


def _write(out_dir: str, benchmark: str, result: dict, table: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"score_{benchmark}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (out / f"score_{benchmark}.md").write_text(table)


def run(args: argparse.Namespace) -> int:
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
