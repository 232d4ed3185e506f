"""What the HTTP service accepts: its settings (`ServeSettings`) and the fixed bounds on a request.

The settings are the options of `nanoemox serve`; the bounds below keep one request's work
proportionate to its upload (a tiny hop or many labels would multiply the model calls per
second of video) and are stated in the OpenAPI description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nanoemox.inference import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
from nanoemox.media.live import LiveLimits

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")  # read as one-frame clips (chat completions)

FORM_SLACK = 64 * 1024  # multipart boundaries and text fields on top of the clip itself
MAX_SUBTITLE_BYTES = 2 * 1024 * 1024
MAX_WINDOW_SECONDS = 60.0
MIN_HOP_SECONDS = 0.25
MAX_LABELS, MAX_LABEL_CHARS = 32, 40


def span_problem(window: float, hop: float) -> str | None:
    """What a window length and hop (seconds) break of the bounds above, or None."""
    if window > MAX_WINDOW_SECONDS:
        return f"window must be at most {MAX_WINDOW_SECONDS:g} s, got {window:g}"
    if hop < MIN_HOP_SECONDS:
        return f"hop must be at least {MIN_HOP_SECONDS:g} s, got {hop:g}"
    return None


def labels_problem(labels: Sequence[str] | None) -> str | None:
    """What a list of labels breaks of the bounds above, or None."""
    if labels and (len(labels) > MAX_LABELS or max(map(len, labels)) > MAX_LABEL_CHARS):
        return f"labels: at most {MAX_LABELS} labels of at most {MAX_LABEL_CHARS} characters each"
    return None


@dataclass
class ServeSettings:
    """Service limits; the defaults suit one GPU serving short clips."""

    max_upload_bytes: int = 200 * 1024 * 1024
    request_timeout: float = 300.0
    max_concurrency: int = 1
    queue_timeout: float = 10.0
    tmp_dir: str | None = None  # where uploads are kept while answered (default: system temp)
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS
    max_timeline_seconds: float = 3600.0  # longer videos are refused by /v1/timeline (422)
    timeline_batch_size: int = 8  # windows per model call of /v1/timeline (lines go out per batch)
    # /v1/chat/completions: where file:// media may be read from (None: nowhere), and remote media
    allowed_local_media_path: str | None = None
    allow_remote_media: bool = False
    remote_media_timeout: float = 30.0  # seconds to fetch one http(s) media URL
    # /v1/live: one session holds a model slot while it lasts
    max_live_seconds: float = LiveLimits.max_seconds  # a session ends after this much media or wall-clock time
    live_idle_timeout: float = 15.0  # seconds without a message before a session is closed
    max_frame_bytes: int = LiveLimits.max_frame_bytes  # one encoded frame
    max_frame_side: int = LiveLimits.max_frame_side  # pixels on the longer side of a frame
    max_live_fps: float = LiveLimits.max_fps  # frames closer together than 1 / this are dropped

    def live_limits(self) -> LiveLimits:
        """The bounds a live session of this service works under."""
        return LiveLimits(self.max_frame_bytes, self.max_frame_side, self.max_live_fps, self.max_live_seconds)
