"""`nanoemox timeline`: how the emotion of a long video changes over time.

    nanoemox timeline VIDEO --model DIR --out DIR [--window 4] [--hop 2] [--tasks mer,msa]
                            [--labels anger,joy,...] [--subtitles FILE.srt|.vtt] [--resume | --overwrite]

Slides a window over the whole video (default 4 s every 2 s); each window is one sample
(its 8 frames, its audio, the subtitle lines overlapping it). Per window: MER
probabilities over the labels, MSA probabilities (sentiment and valence), OV-MER
words with `--tasks mer,msa,ovmer`. Writes timeline.csv, segments.json, timeline.png
and timeline.json into --out (docs/timeline.md), appending as windows finish;
`--resume` continues an interrupted run. A subtitle file beside the video with its
name (VIDEO.srt, VIDEO.vtt) is read unless --subtitles names another or --no-subtitles
is given. Windows with damaged media get an `error` and no answer; the run goes on.
Exit status: 0 done, 2 unusable input or options.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from nanoemox.cli.options import UsageError, add_predictor_arguments, predictor_from_args, split_list

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    # imported when the command runs, not at every start of the command line
    from nanoemox.timeline import DEFAULT_MIN_SEGMENT, DEFAULT_SMOOTH, DEFAULT_WINDOW_TASKS, TIMELINE_TASKS, TimelineOptions

    p = subparsers.add_parser("timeline", help="emotion over time of a long video: CSV, segments, plot",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", metavar="VIDEO", help="video (or audio) file")
    add_predictor_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for timeline.csv, segments.json, timeline.png, timeline.json")
    window, hop = TimelineOptions.window, TimelineOptions.hop
    p.add_argument("--window", type=float, default=window, help=f"window length in seconds (default {window:g})")
    p.add_argument("--hop", type=float, default=hop, help=f"seconds between window starts (default {hop:g})")
    tasks = ",".join(DEFAULT_WINDOW_TASKS)
    p.add_argument("--tasks", default=tasks, help=f"comma-separated subset of {','.join(TIMELINE_TASKS)} (default {tasks})")
    p.add_argument("--labels", default=None, help="MER labels, comma-separated (default: the 7 basic emotions)")
    p.add_argument("--subtitles", default=None, metavar="FILE",
                   help="SRT or WebVTT file of what is said (default: VIDEO's name with .srt or .vtt, when there is one)")
    p.add_argument("--no-subtitles", action="store_true", help="do not look for a subtitle file beside the video")
    p.add_argument("--smooth", type=int, default=DEFAULT_SMOOTH,
                   help=f"windows averaged for segments (default {DEFAULT_SMOOTH}; 1 = none)")
    p.add_argument("--min-segment", type=float, default=DEFAULT_MIN_SEGMENT,
                   help=f"shorter segments join a neighbour (seconds, default {DEFAULT_MIN_SEGMENT:g})")
    p.add_argument("--no-face-detection", action="store_true",
                   help="skip the face detector (faces_found is then 0; only with the processor's face_input=frames)")
    p.add_argument("--speech-clips", choices=("grid", "window"), default="grid",
                   help="where each window's speech clips start: on a grid shared by overlapping windows, so each "
                        "clip is encoded once (default), or spread over each window as for a clip file "
                        "(docs/timeline.md, \"Shared encoder work\")")
    p.add_argument("--no-share", action="store_true",
                   help="encode every window whole instead of once per frame and clip (same answers, slower; "
                        "for comparisons)")
    p.add_argument("--per-person", action="store_true",
                   help="find the people of each window, who speaks, and answer per person: windows.jsonl gains "
                        "`people`, timeline.csv a row per person and window (docs/people.md)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the timeline in --out after its last window")
    group.add_argument("--overwrite", action="store_true", help="replace a timeline already in --out")
    p.set_defaults(func=run)


def _progress_bar(total: int, initial: int, name: str):
    # imported when the command runs, not at every start of the command line
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="window", desc=name, file=sys.stderr, dynamic_ncols=True)


def _subtitles(args) -> str | None:
    """--subtitles, else a .srt or .vtt beside the video with its name (unless --no-subtitles)."""
    if args.subtitles is not None or args.no_subtitles:
        if args.subtitles is not None and args.no_subtitles:
            raise UsageError("--subtitles and --no-subtitles contradict each other")
        return args.subtitles
    for suffix in (".srt", ".vtt"):
        beside = Path(args.video).with_suffix(suffix)
        if beside.is_file():
            logger.info("subtitles: %s (found beside the video; --no-subtitles ignores it)", beside)
            return str(beside)
    return None


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.timeline import Timeline, TimelineOptions, write_timeline

    tasks = tuple(split_list(args.tasks) or ())
    try:
        options = TimelineOptions(window=args.window, hop=args.hop, tasks=tasks, labels=split_list(args.labels),
                                  batch_size=args.batch_size, smooth=args.smooth, min_segment=args.min_segment,
                                  detect_faces=not args.no_face_detection, share=not args.no_share,
                                  speech_clips=args.speech_clips, per_person=args.per_person)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not Path(args.video).exists():
        raise UsageError(f"{args.video}: no such file")
    subtitles = _subtitles(args)
    predictor = predictor_from_args(args)
    if options.per_person and options.detect_faces is False:
        raise UsageError("--per-person finds people by their faces: leave out --no-face-detection")
    if options.detect_faces is False and predictor.processor.media.face_input != "frames":
        raise UsageError("--no-face-detection needs a model whose processor reads whole frames (face_input=frames)")
    timeline = Timeline(predictor, args.video, options, subtitles)
    total = len(timeline.reader)
    logger.info("%s: %.1f s, %d windows of %g s every %g s", args.video, timeline.reader.duration, total,
                options.window, options.hop)
    started = time.perf_counter()
    state = {"bar": None, "seconds": 0.0}

    def progress(result):
        bar = state["bar"]
        if bar is None:  # created on the first window: resumed windows are known by then
            bar = state["bar"] = _progress_bar(total, result["index"], Path(args.video).name)
        state["seconds"] += min(options.hop, result["end"] - result["start"])
        elapsed = time.perf_counter() - started
        bar.set_postfix_str(f"{state['seconds'] / elapsed:.1f} video-s/s", refresh=False)
        bar.update(1)

    try:
        meta = write_timeline(timeline, args.out, resume=args.resume, overwrite=args.overwrite,
                              model_name=str(Path(args.model).resolve()), progress=progress)
    finally:
        if state["bar"] is not None:
            state["bar"].close()
    timing = meta["timing"]
    speed = timing["video_seconds_per_second"]
    print(f"{meta['window_count']} windows ({meta['resumed_from_window']} from an earlier run), {meta['errors']} with damaged "
          f"media; {len(meta['segments'])} segments; {timing['seconds']:.1f} s"
          + (f", {speed:.1f}x real time" if speed else ""))
    print(f"wrote {', '.join(str(Path(args.out) / name) for name in ('timeline.csv', 'segments.json', 'timeline.png', 'timeline.json'))}")
    return 0
