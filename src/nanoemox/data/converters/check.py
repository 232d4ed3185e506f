"""Inspect a downloaded dataset folder without writing anything (`nanoemox data check`).

    from nanoemox.data.converters.check import check_dataset
    report = check_dataset("MELD", "/data/meld-process")
    report["ok"], report["layout"], report["counts"], report["labels"], report["media"]

The folder is read exactly as `data convert` reads it; the report says which layout
was recognised, which annotation files and keys were read, the records per split and
task, the label values, and per media kind how many files exist, how many are
missing and the file names that were expected. When the folder cannot be converted
the report holds the error (which names the file and what was expected) and a
listing of what the folder does contain.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from nanoemox.data.converters import AnnotationError, convert, resolve_name
from nanoemox.data.converters.base import ConversionResult
from nanoemox.data.manifest import MEDIA_KINDS

TOP_LABELS = 40  # label values listed per split/task; the rest are counted


def _label_summary(task: str, targets: list[Any]) -> dict[str, Any]:
    """What the targets of one split/task look like, in a form a person can read."""
    if task in ("mer", "mir"):
        counts = Counter(str(t) for t in targets)
        return {"kind": "classes", "n": len(targets), "distinct": len(counts),
                "values": dict(counts.most_common(TOP_LABELS))}
    if task == "msa":
        numbers = [t for t in targets if isinstance(t, (int, float))]
        words = Counter(str(t) for t in targets if not isinstance(t, (int, float)))
        out: dict[str, Any] = {"kind": "valence", "n": len(targets)}
        if numbers:
            out.update(min=min(numbers), max=max(numbers), positive=sum(v > 0 for v in numbers),
                       negative=sum(v < 0 for v in numbers), zero=sum(v == 0 for v in numbers))
        if words:
            out["values"] = dict(words)
        return out
    if task == "ovmer":
        words = Counter(w for t in targets for w in (t or []))
        sizes = [len(t or []) for t in targets]
        return {"kind": "word lists", "n": len(targets), "distinct_words": len(words),
                "mean_words": round(sum(sizes) / max(1, len(sizes)), 2),
                "values": dict(words.most_common(TOP_LABELS))}
    texts = [t.get("reply", "") if isinstance(t, dict) else str(t or "") for t in targets]
    return {"kind": "text", "n": len(targets), "empty": sum(not t.strip() for t in texts),
            "mean_words": round(sum(len(t.split()) for t in texts) / max(1, len(texts)), 1)}


def _media_summary(result: ConversionResult) -> dict[str, dict[str, Any]]:
    missing = Counter(m["kind"] for m in result.missing)
    out = {}
    for kind in MEDIA_KINDS:
        if kind not in result.media_expected:
            continue  # the layout has no such medium
        expected = result.media_expected[kind]
        out[kind] = {"samples": expected["lookups"], "found": result.media_found.get(kind, 0),
                     "missing": missing.get(kind, 0),
                     "required": expected["required"], "expected_like": expected["like"]}
    return out


def _listing(root: Path, limit: int = 30) -> list[str]:
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    names = [p.name + ("/" if p.is_dir() else "") for p in entries[:limit]]
    return names + ([f"... {len(entries) - limit} more"] if len(entries) > limit else [])


def check_dataset(name: str, root: str | os.PathLike, split: str | None = None) -> dict[str, Any]:
    """A report on dataset `name` under `root`; never writes and never raises for a bad folder.

    ValueError only for an unknown dataset name (the message lists the known ones).
    """
    canonical = resolve_name(name)
    root = Path(root)
    report: dict[str, Any] = {"dataset": canonical, "root": str(root.resolve()), "ok": False}
    if not root.is_dir():
        report["error"] = f"{root} is not a folder"
        return report
    try:
        result = convert(canonical, root, split=split)
    except (AnnotationError, FileNotFoundError, ValueError, OSError) as exc:
        report["error"] = str(exc)
        report["folder_contents"] = _listing(root)
        return report
    by_task: dict[str, list[Any]] = defaultdict(list)
    for record in result.records:
        by_task[f"{record.split}/{record.task}"].append(record.target)
    report.update(
        ok=True, layout=result.layout, sources=result.sources, records=len(result.records),
        counts=result.counts(),
        labels={key: _label_summary(key.split("/")[1], targets) for key, targets in sorted(by_task.items())},
        media=_media_summary(result),
        records_with_missing_media=len({m["id"] for m in result.missing}),
        first_missing=[m["path"] for m in result.missing[:5]],
    )
    return report


def _compact(candidates: list[str]) -> str:
    """'v/a.mp4', 'v/a.avi', 'w/a.mp4' -> 'v/a.{mp4,avi} | w/a.mp4'."""
    groups: dict[str, list[str]] = {}
    for cand in candidates:
        stem, dot, ext = cand.rpartition(".")
        if not dot or "/" in ext:
            stem, ext = cand, ""
        groups.setdefault(stem, []).append(ext)
    parts = []
    for stem, exts in groups.items():
        exts = [e for e in exts if e]
        parts.append(stem if not exts else f"{stem}.{exts[0]}" if len(exts) == 1
                     else f"{stem}.{{{','.join(exts)}}}")
    return " | ".join(parts)


def format_report(report: dict[str, Any]) -> str:
    """The report as the lines `nanoemox data check` prints."""
    lines = [f"{report['dataset']} under {report['root']}"]
    if not report["ok"]:
        lines.append(f"  NOT RECOGNISED: {report['error']}")
        if report.get("folder_contents"):
            lines.append("  the folder holds: " + ", ".join(report["folder_contents"]))
        return "\n".join(lines) + "\n"
    lines.append(f"  layout: {report['layout'] or '(not named by the converter)'}")
    lines.append("  files read:")
    for source in report["sources"]:
        details = ", ".join(f"{k}={v}" for k, v in source.items() if k != "file")
        lines.append(f"    {source['file']}" + (f": {details}" if details else ""))
    lines.append(f"  records: {report['records']}")
    for key, count in report["counts"].items():
        lines.append(f"    {key}: {count}")
    lines.append("  labels:")
    for key, summary in report["labels"].items():
        shown = {k: v for k, v in summary.items() if k not in ("kind", "values")}
        values = summary.get("values")
        lines.append(f"    {key} ({summary['kind']}): " + ", ".join(f"{k}={v}" for k, v in shown.items())
                     + (" | " + ", ".join(f"{k} {v}" for k, v in values.items()) if values else ""))
    lines.append("  media files:")
    for kind, info in report["media"].items():
        need = "required" if info["required"] else "optional"
        lines.append(f"    {kind} ({need}): {info['found']} of {info['samples']} found"
                     + (f", {info['missing']} missing" if info["required"] else "") + "; "
                     f"looked for e.g. {_compact(info['expected_like'])}")
    if report["first_missing"]:
        lines.append(f"  {report['records_with_missing_media']} sample(s) lack a required file; first: "
                     + ", ".join(report["first_missing"]))
    lines.append("  (nothing was written)")
    return "\n".join(lines) + "\n"
