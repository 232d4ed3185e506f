"""`nanoemox analyze`: answer the affective tasks for clips, a folder of clips or a manifest.

    nanoemox analyze clip.mp4 --model DIR [--tasks msa,mer] [--subtitle TEXT] [--json]
    nanoemox analyze a.mp4 b.mp4 | clips/ | test.jsonl --model DIR --out results.jsonl [--resume]

One JSON object per input: every requested task's raw answer and parsed label(s),
plus the media flags (audio_present, video_present, faces_found), or an `error`; a path
that cannot be used (missing, unreadable, a folder without media) gets an `error` too,
and the other inputs are answered. Relative paths start from the current folder.
Under `accelerate launch --num_processes N -m nanoemox analyze ... --out FILE` the inputs
are split across the N processes, each writing its share beside FILE, and the main process
merges them into FILE in input order (`nanoemox.shards`; inputs already in FILE are skipped).
Exit status: 0 all inputs answered, 1 some failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm

from nanoemox.cli.options import (
    EXIT_FAILED, EXIT_OK, UsageError, add_predictor_arguments, check_model_folder, predictor_from_args, split_list,
)
from nanoemox.data.manifest import ManifestError, load_manifest
from nanoemox.media.errors import MediaError, MediaNotFound, UnusableInput
from nanoemox.results_file import ResultsFile
from nanoemox.tasks import EMOTION_TASK, INTENT_TASK, TASK_NAMES, get_task

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------- this command


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="answer the affective tasks for clips, a folder of clips or a manifest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video/audio files, a folder of them, or one manifest .jsonl")
    add_predictor_arguments(p)
    p.add_argument("--tasks", default=",".join(TASK_NAMES), help=f"comma-separated subset of {','.join(TASK_NAMES)} (default: all)")
    p.add_argument("--subtitle", default=None, help="what is said in the clip (single clip; else CLIP.txt beside each clip)")
    p.add_argument("--candidates", default=None, help="MER labels, comma-separated (default: the 7 basic emotions)")
    p.add_argument("--intents", default=None, help="MIR labels, comma-separated (default: the 20 MIntRec intents)")
    p.add_argument("--decode", choices=("generate", "score"), default=None,
                   help="score: rank the fixed labels of msa/mer/mir by likelihood instead of generating "
                        "(default generate; with --per-person: score)")
    p.add_argument("--per-person", action="store_true",
                   help="find the people in each clip, who speaks, and answer the window tasks (mer, msa, ovmer) "
                        "per person: JSON `people` with per track an id, boxes over time, speaking share and answers "
                        "(docs/people.md)")
    p.add_argument("--root", default=None, help="data root of a manifest's media paths (default: the manifest's folder)")
    p.add_argument("--out", default=None, metavar="FILE", help="append one JSON line per input to FILE")
    p.add_argument("--resume", action="store_true", help="with --out: skip inputs whose id FILE already holds")
    p.add_argument("--json", action="store_true", help="print JSON instead of a readable summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _parse_tasks(text: str) -> list[str]:
    tasks = split_list(text) or []
    unknown = [t for t in tasks if t not in TASK_NAMES]
    if unknown or not tasks:
        raise UsageError(f"--tasks {text!r}: unknown or empty task list; choose from {','.join(TASK_NAMES)}")
    return tasks


def run(args) -> int:
    from nanoemox.shards import current_shard, merge_parts  # several processes: only under `accelerate launch`

    tasks = _parse_tasks(args.tasks)
    if args.per_person:
        if args.decode == "generate":
            raise UsageError("--per-person answers are scored (MER and MSA probabilities): leave out --decode generate")
        if len(args.inputs) == 1 and args.inputs[0].endswith(".jsonl"):
            raise UsageError("--per-person reads clips (files or folders), not a manifest")
    args.decode = args.decode or ("score" if args.per_person else "generate")
    if args.resume and not args.out:
        raise UsageError("--resume needs --out (the results file to continue)")
    shard = current_shard()
    if shard.world > 1 and not args.out:
        raise UsageError(f"{shard.world} processes need --out: each writes its share beside that file, "
                         "and the main one merges them into it")
    if shard.world > 1 and args.device is None:
        args.device = shard.device  # each process on its own GPU (None on CPUs: chosen as usual)
    items, root, total = _collect(args, tasks)
    order = [_item_id(item) for item in items]
    results = ResultsFile(args.out, what="result") if args.out else None
    if shard.world > 1:
        if shard.main:  # what an interrupted run of several processes left
            merge_parts(results.path, order)
        shard.wait()
    done = _written_ids(results) if args.resume or shard.world > 1 else set()
    items = [item for item in items if _item_id(item) not in done]
    if shard.world > 1:  # this process's share, written to its own part of --out
        items = shard.mine(items)
        code = _answer(args, items, root, total, ResultsFile(shard.part(results.path), what="result"), done)
        shard.wait()
        if shard.main:
            merged = merge_parts(results.path, order)
            print(f"{shard.world} processes: {merged} result(s) merged into {args.out}", file=sys.stderr)
        return code
    return _answer(args, items, root, total, results, done)


def _answer(args, items: list, root, total: int, results: ResultsFile | None, done: set[str]) -> int:
    """Answer `items` (records groups or error records) in order, appending to `results` or printing."""
    from nanoemox.inference import analyze  # loads torch and transformers: only when the command runs

    if done:
        logger.info("resuming: %d input(s) already in %s", len(done), args.out)
    if not items:
        print("nothing to do: every input already has a result" if done else "nothing to do", file=sys.stderr)
        return EXIT_OK
    check_model_folder(args.model)
    groups = [item for item in items if not isinstance(item, dict)]
    predictor = predictor_from_args(args) if groups else None  # error records alone need no model
    bar = _progress(sum(len(g) for g in groups), args.no_progress)
    failed = 0
    if args.per_person:
        answers = _per_person(predictor, groups, bar)
    else:
        answers = analyze(predictor, groups, root, decode=args.decode, progress=bar.update)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(results.appending()) if results is not None else None
        stack.callback(bar.close)
        stack.callback(answers.close)  # ends its decoding threads now, also after the last answer
        # Results come in input order: an unusable input's error record where the input stood.
        for item in items:
            result = item if isinstance(item, dict) else next(answers)
            failed += "error" in result or "errors" in result
            _emit(result, out, args.json, single=total == 1)
    if failed:
        print(f"{failed} of {len(items)} input(s) failed; see their `error` fields", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _per_person(predictor, groups: list, bar):
    """`analyze_people` per clip, in order; a clip that cannot be read gets its `error` and the run goes on."""
    from nanoemox.inference.people import analyze_people

    for records in groups:
        first = records[0]
        path = first.extra["input"]
        try:
            result = analyze_people(predictor, path, [r.task for r in records], clip_id=first.id, subtitle=first.text,
                                    candidates=_offered(records, EMOTION_TASK), intents=_offered(records, INTENT_TASK))
        except MediaError as exc:
            result = {"id": first.id, "input": path, "error": f"{type(exc).__name__}: {exc}"}
        bar.update(len(records))
        yield result


def _offered(records: list, task: str) -> list[str] | None:
    """The labels a clip's record of `task` offers (None when the task was not asked)."""
    return next((list(r.candidates) for r in records if r.task == task and r.candidates), None)


def _item_id(item) -> str:
    """The id of an input: its error record's, or its records' (one id per group)."""
    return item["id"] if isinstance(item, dict) else item[0].id


def _progress(total: int, disabled: bool):
    # disable=None: shown on a terminal, silent when stderr is redirected.
    return tqdm(total=total, unit="answer", desc="analyze", disable=True if disabled else None, file=sys.stderr)


def _emit(result: dict, out, as_json: bool, single: bool) -> None:
    """Append to the results file (flushed, so a crash loses nothing) or print."""
    if out is not None:
        out.append(result)
    elif as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2 if single else None), flush=True)
    else:
        print(_readable(result), flush=True)


def _readable(result: dict) -> str:
    lines = [f"{result['input']}"]
    if "error" in result:
        return lines[0] + f"\n  error: {result['error']}"
    lines[0] += (
        f"  (audio: {'yes' if result.get('audio_present') else 'no'}, "
        f"faces in {result.get('faces_found', 0)}/{result.get('frames', 0)} frames)"
    )
    for task, entry in result.get("answers", {}).items():
        parsed = entry["parsed"]
        if isinstance(parsed, dict):  # ERG: show the reply, not the reasoning
            parsed = parsed.get("reply")
        shown = ", ".join(parsed) if isinstance(parsed, list) else parsed
        best = ""
        if "probabilities" in entry:
            best = f"  (p={max(entry['probabilities'].values()):.2f})"
        lines.append(f"  {task:<6} {shown if shown not in (None, '') else '(no answer)'}{best}")
        if entry["text"] != shown and not get_task(task).judged:  # a judged answer is its own text
            lines.append(f"         raw: {entry['text']!r}")
    for task, message in result.get("errors", {}).items():
        lines.append(f"  {task:<6} error: {message}")
    people = result.get("people")
    if people is not None:
        lines.append(f"  people: {len(people['tracks'])} found" + (
            f", person {people['speaker']} speaks" if people["speaker"] is not None else ", nobody speaks"))
        for track in people["tracks"]:
            said = ", ".join(get_task(task).window_summary(answer) for task, answer in track.get("answers", {}).items())
            lines.append(f"  person {track['id']}: box {track['boxes'][len(track['boxes']) // 2][1:]}, "
                         f"speaking share {track['speaking_share']:.2f}{': ' + said if said else ''}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- inputs


def _collect(args, tasks: list[str]):
    """(inputs, data root, number of inputs) from clips, folders or one manifest.

    Each input is a group of records (one clip's tasks, or one manifest line), or the
    error record of a path that cannot be used, so that the rest of the batch goes on.
    """
    if len(args.inputs) == 1 and args.inputs[0].endswith(".jsonl"):
        path = Path(args.inputs[0])
        if not path.is_file():
            raise UsageError(f"manifest {path} not found")
        try:
            records = load_manifest(path)
        except ManifestError as exc:
            raise UsageError(str(exc)) from exc
        records = [r for r in records if r.task in tasks]
        for r in records:
            r.extra = {**r.extra, "input": r.id}
        root = args.root or str(path.parent)
        return [[r] for r in records], root, len(records)
    clips = _expand(args.inputs)
    if args.subtitle is not None and len(clips) > 1:
        raise UsageError("--subtitle applies to a single clip; for many clips put CLIP.txt beside each clip")
    return _clip_inputs(clips, tasks, args), ".", len(clips)


def _expand(inputs: list[str]) -> list[tuple[Path, Exception | None]]:
    """(clip, None) per clip named on the command line or found in a named folder (sorted), and
    (path, error) per path that cannot be used: missing, unreadable, a folder without media."""
    from nanoemox.inference import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS  # torch: only when the command runs

    known = set(AUDIO_EXTENSIONS) | set(VIDEO_EXTENSIONS)
    clips: list[tuple[Path, Exception | None]] = []
    for item in inputs:
        path = Path(item)
        try:
            clips.extend((clip, None) for clip in _media_files(path, known))
        except MediaError as exc:
            clips.append((path, exc))
    return clips


def _media_files(path: Path, known: set[str]) -> list[Path]:
    """The media files an input path stands for; a MediaError naming the path when there are none.

    A file that exists but does not decode is left to the decoder, whose error is more precise.
    """
    shown = path.absolute()
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise UnusableInput(shown, "the folder cannot be read (permission denied)")
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in known)
        if not found:
            raise UnusableInput(shown, f"a folder holding no video or audio files ({', '.join(sorted(known))})")
        return found
    if not path.exists():
        raise MediaNotFound(shown, "no such file or folder",
                            advice="check the path (a relative path starts from the current folder)")
    if not path.is_file():
        raise UnusableInput(shown, "not a regular file or a folder")
    if not os.access(path, os.R_OK):
        raise UnusableInput(shown, "the file cannot be read (permission denied)")
    return [path]


def _clip_inputs(clips: list[tuple[Path, Exception | None]], tasks: list[str], args) -> list:
    """Per clip its group of records, or its error record (same form as a clip that fails to decode)."""
    from nanoemox.inference import clip_records  # torch: only when the command runs

    stems = [c.stem for c, _ in clips]
    inputs: list = []
    for clip, error in clips:
        # Ids are file stems, unless two inputs share one: then the path tells them apart.
        clip_id = clip.stem if stems.count(clip.stem) == 1 else str(clip.with_suffix(""))
        # Results name the input by its absolute path: a results file is read from anywhere.
        shown = str(clip.absolute())
        subtitle = args.subtitle
        if error is None and subtitle is None:
            subtitle, error = _sidecar_subtitle(clip)
        if error is not None:
            inputs.append({"id": clip_id, "input": shown, "error": f"{type(error).__name__}: {error}"})
            continue
        inputs.append(
            clip_records(
                shown,
                tasks,
                clip_id=clip_id,
                subtitle=subtitle,
                candidates=split_list(args.candidates),
                intents=split_list(args.intents),
            )
        )
    return inputs


def _sidecar_subtitle(clip: Path) -> tuple[str | None, Exception | None]:
    """(subtitle, None) from CLIP.txt beside the clip (None when absent), or (None, error) when unreadable."""
    sidecar = clip.with_suffix(".txt")
    if not sidecar.is_file():
        return None, None
    try:
        return sidecar.read_text(encoding="utf-8").strip() or None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, UnusableInput(sidecar.absolute(), f"the subtitle file beside the clip cannot be read ({exc})",
                                   advice="fix or remove it")


def _written_ids(results: ResultsFile | None) -> set[str]:
    """Ids of the results already in a results file (a line cut short by a crash is cut off: that input runs again)."""
    if results is None:
        return set()
    try:
        return {str(r["id"]) for r in results.read() if isinstance(r, dict) and "id" in r}
    except ValueError as exc:
        raise UsageError(f"--resume: {exc}") from None
