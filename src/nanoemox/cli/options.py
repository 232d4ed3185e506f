"""What several commands share: the usage error, the model and decoding options, list parsing.

Every `cmd_*.py` imports shared command-line pieces from here only (never from another
command). The decoding options become one `Decoding` value here, checked once, and are
passed on as that value.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nanoemox.decoding import Decoding, parse_max_new_tokens
from nanoemox.eval import DEFAULT_API_KEY_ENV

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line itself: `nanoemox.cli.main` prints it as one line, exit status 2."""


def add_predictor_arguments(p) -> None:
    """Options that load and configure a Predictor (analyze, chat, serve, timeline)."""
    p.add_argument("--model", required=True, metavar="DIR", help="model folder (config.json, model.safetensors, tokenizer/)")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="auto (default): bfloat16 on GPUs and CPUs that compute it natively, else float32")
    p.add_argument("--batch-size", type=int, default=8, help="samples per batch on the device (default 8)")
    add_decoding_arguments(p)


def add_decoding_arguments(p) -> None:
    """Answer budgets and decoding (analyze, chat, serve, timeline and eval). Greedy unless --sample."""
    p.add_argument("--max-new-tokens", type=budgets_argument, default=None, metavar="N|TASK=N,...",
                   help="answer length limit: one number for every task or per task, e.g. eri=256,erg=384 "
                        "(default: the model folder's budgets measured on its training data, else built-in)")
    p.add_argument("--sample", action="store_true", help="sample instead of plain greedy decoding (seeded)")
    p.add_argument("--temperature", type=float, help="sampling temperature (with --sample; default 1.0)")
    p.add_argument("--top-p", type=float, help="nucleus sampling (with --sample; default off)")
    p.add_argument("--top-k", type=int, help="top-k sampling (with --sample; default off)")
    p.add_argument("--repetition-penalty", type=float,
                   help="repetition penalty, greedy or sampled (default: none, whatever the checkpoint says)")
    p.add_argument("--seed", type=int, default=0, help="random seed of sampling (default 0)")


def budgets_argument(text: str):
    """argparse type of --max-new-tokens: one number, or TASK=N pairs."""
    try:
        return parse_max_new_tokens(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def decoding_from_args(args) -> Decoding:
    """The one `Decoding` of the decoding options; UsageError for a knob that needs --sample."""
    try:
        return Decoding(do_sample=args.sample, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                        repetition_penalty=args.repetition_penalty, seed=args.seed,
                        max_new_tokens=args.max_new_tokens)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def check_model_folder(model: str) -> None:
    if not (Path(model) / "config.json").is_file():
        raise UsageError(f"{model} is not a model folder (no config.json); create one with `nanoemox init-model` or training")


def predictor_from_args(args):
    """The Predictor of the model and decoding options (after checking the model folder)."""
    from nanoemox.inference import Predictor  # loads torch and transformers: only when a command needs a model

    check_model_folder(args.model)
    decoding = decoding_from_args(args)
    return Predictor.from_pretrained(args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                     decoding=decoding)


# ---------------------------------------------------------------------- references and scoring (score, eval)


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


def references_from_args(args: argparse.Namespace, split: str | None = "test",
                         media_root: str | None = None) -> list:
    """ReferenceSets from --references (filtered by `split` unless None) or --data-root (`split`)."""
    from nanoemox.eval.harness import load_references  # loads torch and the model code: only when run

    if args.references:
        return load_references(args.benchmark, manifests=args.references, split=split, media_root=media_root)
    return load_references(args.benchmark, data_root=args.data_root, split=split)


def _client(args: argparse.Namespace):
    from nanoemox.eval.llm import LLMClient, LLMConfig  # the HTTP client: only when an LLM is used

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
    # Scoring tools load the emotion wheel and the HTTP client: only when a command scores.
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


# ---------------------------------------------------------------------- lists


def split_list(text: str | None) -> list[str] | None:
    """Comma-separated labels as a list, or None when empty."""
    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    return items or None


class StageProgress:
    """One line per stage on stderr, updated in place, so a long demo shows it is alive."""

    def __init__(self) -> None:
        self.stage, self.started, self.last = None, time.perf_counter(), 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage != self.stage:
            if self.stage is not None:
                sys.stderr.write("\n")
            self.stage, self.started = stage, now
        if now - self.last > 0.5 or done == total:
            self.last = now
            sys.stderr.write(f"\r  {stage:<12} {done}/{total}  {now - self.started:6.1f} s")
            sys.stderr.flush()
