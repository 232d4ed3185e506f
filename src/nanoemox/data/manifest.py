"""The one manifest format every dataset, converter and trainer shares.

A manifest is a JSONL file, one sample per line. Media paths are relative to a data
root given at load time, so a corpus can move between machines. Schema (`SCHEMA`
below is the machine-readable form; docs/manifest.md the prose):

    {
      "id":         "mer2023_sample_00012",          # unique within the file
      "dataset":    "MER2023",                        # source dataset name
      "split":      "train" | "dev" | "test",
      "task":       "msa" | "mer" | "ovmer" | "eri" | "mir" | "erg",
      "media":      {"video": "clips/a.mp4" | null,   # relative to the data root
                     "audio": "audio/a.wav" | null,   # separate audio file, if any
                     "faces": "faces/a/" | null},     # pre-extracted face crops
      "text":       "subtitle of the clip" | null,
      "history":    [{"role": "speaker" | "listener", "text": "..."}] | null,   # ERG
      "target":     task-dependent, see below | null (unlabelled),
      "candidates": ["happy", "sad", ...] | null,     # closed-set MER / MIR
      "extra":      {...}                              # task- or dataset-specific fields
    }

Targets: msa -> a float valence (sign gives the sentiment) or one of
"positive"/"negative"/"neutral"; mer, mir -> a label string; ovmer -> a list of
emotion words; eri -> a free-text reason; erg -> {"event_scenario", "speaker_emotion",
"emotion_cause", "goal_to_response", "reply"} (strings).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from nanoemox.tasks import ERG_FIELDS, TASK_NAMES, get_task
from nanoemox.utils import plain_file_mode

SPLITS = ("train", "dev", "test")
MEDIA_KINDS = ("video", "audio", "faces")
ERG_TARGET_KEYS = ERG_FIELDS

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Nano-EmoX manifest line",
    "type": "object",
    "required": ["id", "dataset", "split", "task", "media"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "dataset": {"type": "string", "minLength": 1},
        "split": {"enum": list(SPLITS)},
        "task": {"enum": list(TASK_NAMES)},  # the tasks registered at import; `validate` asks the registry
        "media": {
            "type": "object",
            "properties": {k: {"type": ["string", "null"]} for k in MEDIA_KINDS},
            "additionalProperties": False,
        },
        "text": {"type": ["string", "null"]},
        "history": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "required": ["role", "text"],
                "properties": {"role": {"enum": ["speaker", "listener"]}, "text": {"type": "string"}},
            },
        },
        "target": {},
        "candidates": {"type": ["array", "null"], "items": {"type": "string"}},
        "extra": {"type": "object"},
    },
    "additionalProperties": False,
}


class ManifestError(ValueError):
    """A manifest could not be read; `problems` lists every bad line as (line number, message)."""

    def __init__(self, path: str | os.PathLike, problems: list[tuple[int, str]]):
        self.path = str(path)
        self.problems = problems
        shown = "\n".join(f"  line {n}: {msg}" for n, msg in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{self.path}: {len(problems)} bad line(s)\n{shown}{more}")


@dataclass
class Record:
    """One manifest line."""

    id: str
    dataset: str
    split: str
    task: str
    media: dict[str, str | None] = field(default_factory=dict)
    text: str | None = None
    history: list[dict[str, str]] | None = None
    target: Any = None
    candidates: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def media_path(self, kind: str, root: str | os.PathLike) -> Path | None:
        """Absolute path of one media kind under `root`, or None when the sample has none."""
        rel = self.media.get(kind)
        return None if rel is None else Path(root) / rel

    def inputs(self, root: str | os.PathLike) -> dict[str, Any]:
        """The model inputs it names: media paths under `root`, subtitle, dialogue history and candidates
        (keyword arguments of `NanoEmoXProcessor.process` and `Predictor.sample`)."""
        return {"video": self.media_path("video", root), "audio": self.media_path("audio", root),
                "faces": self.media_path("faces", root), "text": self.text, "history": self.history,
                "candidates": self.candidates}

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def _check_target(task: str, target: Any) -> str | None:
    """What is wrong with a (registered) task's target (`Task.target_problem`); None when unlabelled."""
    return None if target is None else get_task(task).target_problem(target)


def validate(obj: Any) -> str | None:
    """Return a message naming the first problem of one decoded line, or None if it is valid."""
    if not isinstance(obj, dict):
        return "line is not a JSON object"
    unknown = sorted(set(obj) - set(SCHEMA["properties"]))
    if unknown:
        return "unknown field(s) " + ", ".join(unknown)
    for key in SCHEMA["required"]:
        if key not in obj:
            return f"missing field {key!r}"
    for key in ("id", "dataset"):
        if not isinstance(obj[key], str) or not obj[key]:
            return f"{key!r} must be a non-empty string"
    if obj["split"] not in SPLITS:
        return f"split must be one of {SPLITS}, got {obj['split']!r}"
    if obj["task"] not in TASK_NAMES:
        return f"task must be one of {TASK_NAMES}, got {obj['task']!r}"
    media = obj["media"]
    if not isinstance(media, dict):
        return "media must be an object"
    bad = [k for k in media if k not in MEDIA_KINDS]
    if bad:
        return f"unknown media kind(s) {bad}; allowed: {MEDIA_KINDS}"
    if any(v is not None and not isinstance(v, str) for v in media.values()):
        return "media paths must be strings or null"
    if obj.get("text") is not None and not isinstance(obj["text"], str):
        return "text must be a string or null"
    history = obj.get("history")
    if history is not None:
        if not isinstance(history, list):
            return "history must be a list of {role, text} turns"
        for i, turn in enumerate(history):
            if not isinstance(turn, dict) or turn.get("role") not in ("speaker", "listener"):
                return f"history[{i}] needs role 'speaker' or 'listener'"
            if not isinstance(turn.get("text"), str):
                return f"history[{i}].text must be a string"
    candidates = obj.get("candidates")
    if candidates is not None and (
        not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates)
    ):
        return "candidates must be a list of strings or null"
    if "extra" in obj and not isinstance(obj["extra"], dict):
        return "extra must be an object"
    return _check_target(obj["task"], obj.get("target"))


def _record(obj: dict[str, Any]) -> Record:
    media = {k: obj["media"].get(k) for k in MEDIA_KINDS}
    return Record(
        id=obj["id"],
        dataset=obj["dataset"],
        split=obj["split"],
        task=obj["task"],
        media=media,
        text=obj.get("text"),
        history=obj.get("history"),
        target=obj.get("target"),
        candidates=obj.get("candidates"),
        extra=obj.get("extra") or {},
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} (NaN and Infinity are not valid values)")


def decode_json_line(raw: bytes | str) -> tuple[Any, str | None]:
    """(object, None) for one JSON line, or (None, problem): bad UTF-8, bad JSON, NaN/Infinity, deep nesting."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    try:
        return json.loads(raw, parse_constant=_no_constant), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at column {exc.colno})"
    except ValueError as exc:
        return None, str(exc)
    except RecursionError:
        return None, "nested too deeply to read"


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line number, decoded object or None, problem or None) for every non-blank line.

    Every problem names its line: invalid UTF-8, invalid JSON, NaN or Infinity (which
    JSON does not have), or nesting too deep to read.
    """
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            obj, problem = decode_json_line(line)
            yield lineno, obj, problem


def iter_manifest(path: str | os.PathLike) -> Iterator[tuple[int, Record | None, str | None]]:
    """Yield (line number, record or None, problem or None) for every non-blank line."""
    for lineno, obj, problem in iter_jsonl(path):
        problem = problem or validate(obj)
        yield lineno, (None if problem else _record(obj)), problem


def load_manifest(path: str | os.PathLike, *, strict: bool = True) -> list[Record]:
    """Read and validate a manifest.

    With `strict` (default) any bad line raises a `ManifestError` listing every bad
    line with its number; otherwise bad lines are skipped. Duplicate ids are errors.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    records: list[Record] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for lineno, record, problem in iter_manifest(path):
        if problem is None and record.id in seen:
            problem = f"duplicate id {record.id!r} (first on line {seen[record.id]})"
        if problem:
            problems.append((lineno, problem))
            continue
        seen[record.id] = lineno
        records.append(record)
    if problems and strict:
        raise ManifestError(path, problems)
    return records


def write_manifest(path: str | os.PathLike, records: Iterable[Record]) -> int:
    """Write records atomically (temp file + rename); return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.chmod(tmp, plain_file_mode())  # mkstemp's files are owner-only
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for record in records:
                problem = validate(json.loads(record.to_json()))
                if problem:
                    raise ValueError(f"record {record.id!r} is not valid: {problem}")
                fh.write(record.to_json() + "\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return n
