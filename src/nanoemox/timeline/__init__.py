"""Emotion timelines of long videos: windows, per-window answers, segments, files.

`Timeline` answers every window of a video (`nanoemox.media.stream.WindowReader`) with
MER and MSA probabilities and optionally OV-MER words; `write_timeline` writes
timeline.csv, segments.json, timeline.png and timeline.json (docs/timeline.md).
"""

from nanoemox.inference.windows import WindowAnswerer
from nanoemox.tasks import DEFAULT_WINDOW_TASKS, TIMELINE_TASKS
from nanoemox.timeline.run import FILES, Timeline, TimelineError, TimelineOptions, write_timeline
from nanoemox.timeline.segments import DEFAULT_MIN_SEGMENT, DEFAULT_SMOOTH, segment
from nanoemox.timeline.subtitles import SubtitleError, Subtitles
from nanoemox.timeline.table import csv_columns, csv_row, csv_text

__all__ = [
    "DEFAULT_MIN_SEGMENT", "DEFAULT_SMOOTH", "DEFAULT_WINDOW_TASKS", "FILES", "TIMELINE_TASKS", "SubtitleError", "Subtitles", "Timeline",
    "TimelineError", "TimelineOptions", "WindowAnswerer", "csv_columns", "csv_row", "csv_text", "segment",
    "write_timeline",
]
