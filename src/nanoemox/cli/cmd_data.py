"""`nanoemox data`: check and convert downloaded datasets, list converters, summarise manifests.

    nanoemox data check --dataset MELD --root /data/meld-process
    nanoemox data convert --dataset MER2023 --root /data/mer2023 --out manifests/mer2023.jsonl
    nanoemox data list
    nanoemox data stats manifests/mer2023.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="dataset converters and manifest tools")
    actions = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    conv = actions.add_parser("convert", help="convert one dataset in its native layout to a manifest")
    conv.add_argument("--dataset", required=True, help="dataset name (see `nanoemox data list`)")
    conv.add_argument("--root", required=True, help="folder holding the dataset's native layout")
    conv.add_argument("--out", required=True, help="manifest (.jsonl) to write")
    conv.add_argument("--split", choices=("train", "dev", "test"), help="convert one split only")
    conv.add_argument("--report", help="JSON report path (default: <out>.report.json when media are missing)")
    conv.add_argument("--drop-missing", action="store_true",
                      help="leave out records whose media files were not found")
    conv.set_defaults(func=run_convert)

    chk = actions.add_parser("check", help="say what a downloaded dataset folder holds, writing nothing")
    chk.add_argument("--dataset", required=True, help="dataset name (see `nanoemox data list`)")
    chk.add_argument("--root", required=True, help="the downloaded dataset folder")
    chk.add_argument("--split", choices=("train", "dev", "test"), help="check one split only")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.set_defaults(func=run_check)

    lst = actions.add_parser("list", help="list the dataset converters")
    lst.set_defaults(func=run_list)

    stats = actions.add_parser("stats", help="count the records of manifests per dataset, split and task")
    stats.add_argument("manifests", nargs="+", help="manifest files")
    stats.set_defaults(func=run_stats)


def run_convert(args: argparse.Namespace) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.data.converters import AnnotationError, convert

    try:
        result = convert(args.dataset, args.root, split=args.split)
    except (AnnotationError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.drop_missing:
        result = result.without_missing()
    report = args.report
    if report is None and result.missing:
        report = str(Path(args.out).with_suffix("")) + ".report.json"
    n = result.write(args.out, report_path=report)
    summary = result.summary()
    print(f"{summary['dataset']}: wrote {n} records to {args.out}")
    for key, count in summary["counts"].items():
        print(f"  {key}: {count}")
    if result.missing:
        print(f"  missing media: {summary['missing_files']} file(s) in "
              f"{summary['records_with_missing_media']} sample(s); first: {result.missing[0]['path']}")
    if report:
        print(f"  report: {report}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.data.converters.check import check_dataset, format_report

    try:
        report = check_dataset(args.dataset, args.root, split=args.split)
    except ValueError as exc:  # unknown dataset name
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report), end="\n" if args.json else "")
    return 0 if report["ok"] else 2


def run_list(args: argparse.Namespace) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.data.converters import CONVERTERS

    for name, conv in CONVERTERS.items():
        aliases = f" (also: {', '.join(conv.aliases)})" if conv.aliases else ""
        print(f"{name:14s} {conv.description}{aliases}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.data.manifest import ManifestError, load_manifest

    counts: Counter[str] = Counter()
    for path in args.manifests:
        try:
            records = load_manifest(path)
        except (ManifestError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        counts.update(f"{r.dataset}\t{r.split}\t{r.task}" for r in records)
    print(json.dumps({k.replace("\t", "/"): v for k, v in sorted(counts.items())}, indent=2))
    return 0
