"""Emotion timelines of long videos: windows, per-window answers, segments, files.

`Timeline` answers every window of a video (`nanoemox.media.stream.WindowReader`) with
MER and MSA probabilities and optionally OV-MER words; `write_timeline` writes
timeline.csv, segments.json, timeline.png and timeline.json (docs/timeline.md).
"""

from nanoemox.timeline.infer import DEFAULT_TASKS, TIMELINE_TASKS, WindowAnswerer
from nanoemox.timeline.run import FILES, Timeline, TimelineError, TimelineOptions, csv_columns, write_timeline
from nanoemox.timeline.segments import DEFAULT_MIN_SEGMENT, DEFAULT_SMOOTH, segment
from nanoemox.timeline.subtitles import SubtitleError, Subtitles

__all__ = [
    "DEFAULT_MIN_SEGMENT", "DEFAULT_SMOOTH", "DEFAULT_TASKS", "FILES", "TIMELINE_TASKS", "SubtitleError", "Subtitles", "Timeline",
    "TimelineError", "TimelineOptions", "WindowAnswerer", "csv_columns", "segment", "write_timeline",
]
