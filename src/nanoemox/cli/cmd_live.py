"""`nanoemox live`: stream a video file to a running service's live analysis, at its own pace.

    nanoemox live VIDEO --url http://127.0.0.1:8000 [--out DIR] [--window 4] [--hop 1]
                  [--tasks mer,msa] [--speed 1] [--seconds N] [--reply-every N] [--per-person]

Sends the file as a camera and a microphone would (every frame at its time, the audio in
100 ms chunks) to the service's /v1/live WebSocket (`nanoemox serve`; docs/live.md) and
prints each window's answer as it arrives: emotion, sentiment, valence, the latency from
the window's end to its answer, and how many stale windows the service skipped to keep up.
With --out, writes windows.jsonl, timeline.csv (the columns of `nanoemox timeline`) and
live.json (settings and a summary: windows, skipped, median and 95th-percentile latency).
Ctrl-C stops early: the session is ended properly and what came back is still written.
Exit status: 0 done, 2 unusable file or options, or a service that refused or ended the session.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nanoemox.cli.options import UsageError, split_list
from nanoemox.tasks import DEFAULT_WINDOW_TASKS, TIMELINE_TASKS, get_task


def register(subparsers) -> None:
    p = subparsers.add_parser("live", help="stream a video to a service's live analysis and print the answers",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", metavar="VIDEO", help="video (or audio) file to stream")
    p.add_argument("--url", default="http://127.0.0.1:8000",
                   help="the service (http://HOST:PORT or ws://HOST:PORT/v1/live; default http://127.0.0.1:8000)")
    p.add_argument("--out", default=None, metavar="DIR", help="folder for windows.jsonl, timeline.csv and live.json")
    p.add_argument("--window", type=float, default=4.0, help="window length in seconds (default 4)")
    p.add_argument("--hop", type=float, default=1.0, help="seconds between window starts (default 1)")
    tasks = ",".join(DEFAULT_WINDOW_TASKS)
    p.add_argument("--tasks", default=tasks, help=f"comma-separated subset of {','.join(TIMELINE_TASKS)} (default {tasks})")
    p.add_argument("--labels", default=None, help="MER labels, comma-separated (default: the 7 basic emotions)")
    p.add_argument("--speed", type=float, default=1.0, help="pace relative to real time (default 1: real time)")
    p.add_argument("--seconds", type=float, default=None, help="stream only the first N seconds of the file")
    p.add_argument("--reply-every", type=float, default=None, metavar="N",
                   help="ask for an empathetic reply every N seconds of media")
    p.add_argument("--frame-format", choices=("png", "jpeg"), default="png",
                   help="how frames are sent (default png: lossless, the pixels a timeline of the file sees)")
    p.add_argument("--per-person", action="store_true",
                   help="answer each person in view, the speaker with the voice and words (docs/people.md)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=run)


def _line(message: dict) -> str | None:
    kind = message.get("type")
    if kind == "window":
        parts = [f"{message['start']:7.1f}-{message['end']:.1f} s"]
        if "error" in message:
            parts.append(f"error: {message['error']}")
        parts += [get_task(task).window_summary(message[task]) for task in TIMELINE_TASKS if task in message]
        parts.append(f"faces {message['faces_found']}/{message['frames']}")
        parts.append(f"latency {message['client_latency']:.2f} s")
        if message.get("skipped"):
            parts.append(f"{message['skipped']} skipped")
        for person in message.get("people") or []:
            said = ", ".join(get_task(task).window_summary(person[task]) for task in TIMELINE_TASKS if task in person)
            parts.append(f"[person {person['id']}{' speaking' if person['speaking'] else ''}: {said}]")
        return "  ".join(parts)
    if kind == "reply":
        return f"reply to window {message['index']}: {message['text']!r}"
    return None


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.live.client import LiveClientError, stream_file, write_run

    if not Path(args.video).is_file():
        raise UsageError(f"{args.video}: no such file")

    def show(message: dict) -> None:
        line = None if args.quiet else _line(message)
        if line:
            print(line, flush=True)

    try:
        run_ = stream_file(args.url, args.video, window=args.window, hop=args.hop, tasks=split_list(args.tasks) or (),
                           labels=split_list(args.labels), speed=args.speed, frame_format=args.frame_format,
                           seconds=args.seconds, reply_every=args.reply_every, on_message=show,
                           per_person=args.per_person)
    except LiveClientError as exc:
        raise UsageError(str(exc)) from None
    summary = run_.summary()
    if run_.interrupted:
        print(f"interrupted after {summary['sent_seconds']:.1f} s of media", file=sys.stderr)
    print(f"{summary['windows']} windows answered, {summary['skipped']} skipped, {summary['errors']} with damaged media; "
          f"latency median {summary['latency_median']} s, 95th percentile {summary['latency_p95']} s", file=sys.stderr)
    if args.out:
        print("wrote " + ", ".join(str(p) for p in write_run(run_, args.out)), file=sys.stderr)
    return 0
