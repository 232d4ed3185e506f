"""Frame sampling from video files by seeking, with PyAV.

`read_frames(path, n)` returns `n` RGB frames taken at the centres of `n` equal
slices of the video stream's duration (the frame on screen at that moment, so
variable frame rate needs no special case). Instead of decoding the whole file,
the reader seeks to the keyframe before each target and decodes forward from
there; it only seeks when that actually skips work (a keyframe lies between the
current decode position and the target, read from the demuxer's index when the
container has one), so a one-hour clip costs about what a ten-second one does.

Clips with fewer frames than `n` repeat frames (each target takes the frame on
screen). Frames larger than `MAX_FRAME_SIDE` are downscaled while they are converted
to RGB; streams of more than `MAX_FRAME_PIXELS` pixels per frame are refused. Rotation metadata (the display matrix FFmpeg attaches to decoded
frames) is applied, so portrait phone videos come out upright. Horizontal or
vertical flips in the display matrix and non-square pixel aspect ratios are not
applied.

The decoding steps (`FrameCursor`, `decoded_frames`, `keyframe_times`, `should_seek`,
`advance`, `to_rgb`) are public because the window reader (stream.py) decodes the same way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from nanoemox.media.container import DEFAULT_MAX_FILE_BYTES, first_stream, open_container
from nanoemox.media.errors import CorruptMedia, TruncatedMedia, UnsupportedCodec, ZeroDuration

logger = logging.getLogger(__name__)

MAX_BAD_PACKETS = 64  # damaged packets skipped before the file counts as corrupt
SEEK_GAP_SECONDS = 2.0  # without a keyframe index, seek only when the next target is this far ahead
# Frames are downscaled to this longest side while they are converted to RGB (the model
# reads 224-pixel frames and face detection works at 640), and streams whose frames
# exceed MAX_FRAME_PIXELS are refused before decoding, so a tiny file of huge frames
# cannot take gigabytes of memory.
MAX_FRAME_SIDE = 1280
MAX_FRAME_PIXELS = 8192 * 8192


@dataclass
class SampledFrames:
    """`frames`: uint8 [H, W, 3] arrays (upright), one per target; `times`: their timestamps (s)."""

    frames: list[np.ndarray]
    times: list[float]
    targets: list[float]
    duration: float
    rotation: int = 0
    seeks: int = 0
    decoded: int = 0
    info: dict = field(default_factory=dict)


@dataclass
class FrameCursor:
    """Decoding state: the last frame at or before the target and one frame of look-ahead."""

    frames: Iterator[av.VideoFrame]
    current: av.VideoFrame | None = None
    ahead: av.VideoFrame | None = None
    ended: bool = False

    def position(self) -> float | None:
        frame = self.ahead or self.current
        return None if frame is None else frame.time


def stream_span(container: av.container.InputContainer, stream: av.stream.Stream) -> tuple[float, float | None]:
    """(start, duration) of a stream in seconds; duration None when the file does not say."""
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if stream.duration:
        return start, float(stream.duration * stream.time_base)
    if container.duration:
        container_start = container.start_time / av.time_base if container.start_time is not None else start
        return start, container.duration / av.time_base - (start - container_start)
    return start, None


def _scan_duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    """Read packet timestamps only (no decoding) to find how long the stream lasts."""
    last = None
    for packet in container.demux(stream):
        if packet.pts is not None:
            end = float((packet.pts + (packet.duration or 0)) * stream.time_base)
            last = end if last is None else max(last, end)
    container.seek(0)
    return last or 0.0


def measured_span(container: av.container.InputContainer, stream: av.stream.Stream) -> tuple[float, float]:
    """(start, duration) of a stream; a duration the file does not give is read from packet timestamps."""
    start, duration = stream_span(container, stream)
    if duration is None or duration <= 0:
        duration = max(_scan_duration(container, stream) - start, 0.0)
    return start, duration


def video_stream(container: av.container.InputContainer, path: Path) -> av.stream.Stream:
    """The first video stream; refused (UnsupportedCodec) when its frames exceed MAX_FRAME_PIXELS."""
    stream = first_stream(container, path, "video")
    width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
    if width * height > MAX_FRAME_PIXELS:
        raise UnsupportedCodec(path, f"frames of {width}x{height} pixels exceed the limit of {MAX_FRAME_PIXELS} "
                                     "pixels per frame; downscale the video first")
    return stream


def keyframe_times(stream: av.stream.Stream) -> np.ndarray | None:
    """Sorted keyframe timestamps from the demuxer index, or None when there is no index."""
    try:
        entries = stream.index_entries
        times = [e.timestamp for e in entries if e.is_keyframe]
    except (AttributeError, TypeError):
        return None
    if not times:
        return None
    return np.sort(np.asarray(times, dtype=np.float64) * float(stream.time_base))


def decode_stats(origin: float) -> dict:
    """The counters `decoded_frames` keeps: frames decoded, a read error, damaged packets, where the data ends."""
    return {"decoded": 0, "read_error": False, "bad_packets": 0, "data_end": origin}


def decoded_frames(container, stream, path: Path, stats: dict, max_bad: int | None = MAX_BAD_PACKETS) -> Iterator[av.VideoFrame]:
    """Decode forward, skipping damaged packets; a demuxer read error ends the stream.

    The times of skipped packets are kept in `stats["bad_times"]` (None when unknown);
    more than `max_bad` of them (None: no limit) make the file corrupt.
    """
    bad = 0
    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            return
        except av.error.FFmpegError:
            stats["read_error"] = True
            return
        try:
            frames = packet.decode()
        except (av.error.InvalidDataError, av.error.UndefinedError, av.error.PatchWelcomeError):
            bad += 1
            stats["bad_packets"] = bad
            stats.setdefault("bad_times", []).append(
                float(packet.pts * stream.time_base) if packet.pts is not None else None)
            if max_bad is not None and bad > max_bad:
                raise CorruptMedia(path, f"more than {max_bad} video packets fail to decode") from None
            continue
        for frame in frames:
            if frame.time is None:  # no timestamp at all: cannot place it in time, skip
                continue
            stats["decoded"] += 1
            span = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else 0.0
            stats["data_end"] = max(stats["data_end"], frame.time + span)
            yield frame


def should_seek(cursor: FrameCursor, target: float, keyframes: np.ndarray | None, start: float) -> bool:
    """Whether seeking to `target` skips decoding work (a keyframe lies between the cursor and it)."""
    position = cursor.position()
    if position is None:
        position = start
    if target <= position:
        return False
    if keyframes is not None:
        # Seeking lands on the last keyframe <= target; it only helps if that is ahead of us.
        k = np.searchsorted(keyframes, target, side="right") - 1
        return k >= 0 and keyframes[k] > position
    return target - position > SEEK_GAP_SECONDS


def advance(cursor: FrameCursor, target: float) -> av.VideoFrame | None:
    """Decode until the look-ahead frame is after `target`; return the frame on screen at `target`."""
    while not cursor.ended:
        if cursor.ahead is not None:
            if cursor.ahead.time > target:
                break
            cursor.current, cursor.ahead = cursor.ahead, None
        cursor.ahead = next(cursor.frames, None)
        cursor.ended = cursor.ahead is None
    # Before the first frame (e.g. a target before a late start) the first frame stands in.
    return cursor.current if cursor.current is not None else cursor.ahead


def downscaled_size(width: int, height: int) -> tuple[int, int] | None:
    """(width, height) of a frame scaled down to MAX_FRAME_SIDE on its longer side; None when it fits."""
    scale = min(1.0, MAX_FRAME_SIDE / max(width, height))
    if scale >= 1.0:
        return None
    return max(2, round(width * scale)), max(2, round(height * scale))


def to_rgb(frame: av.VideoFrame) -> tuple[np.ndarray, int]:
    """An upright uint8 RGB array [H, W, 3] of `frame` (downscaled to MAX_FRAME_SIDE), and its rotation."""
    size = downscaled_size(frame.width, frame.height)
    if size is not None:  # downscaled in the pixel-format conversion: no full-size RGB copy is ever made
        rgb = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray()
    else:
        rgb = frame.to_ndarray(format="rgb24")  # [H, W, 3]
    rotation = int(frame.rotation or 0)
    quarter_turns = int(round(rotation / 90.0)) % 4
    if quarter_turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=quarter_turns))  # rotation is counter-clockwise
    return rgb, rotation


def read_frames(
    path: str | os.PathLike,
    num_frames: int = 8,
    max_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
) -> SampledFrames:
    """Sample `num_frames` upright RGB frames uniformly over the video's duration."""
    path = Path(path)
    with open_container(path, max_bytes) as container:
        stream = video_stream(container, path)
        start, duration = measured_span(container, stream)
        targets = [start + (i + 0.5) * duration / num_frames for i in range(num_frames)]
        stats = {**decode_stats(start), "ended_early": False}
        try:
            sampled = _sample(container, stream, path, targets, start, stats)
        except av.error.DecoderNotFoundError:
            raise UnsupportedCodec(path, f"no decoder for codec {stream.codec_context.name!r}") from None
    frames, times, rotation, seeks = sampled
    _check_complete(path, times, targets, duration, start, stats)
    return SampledFrames(frames, times, targets, duration, rotation, seeks, stats["decoded"], info=stats)


def _sample(container, stream, path: Path, targets: list[float], start: float, stats: dict):
    keyframes = keyframe_times(stream)
    cursor = FrameCursor(decoded_frames(container, stream, path, stats))
    frames: list[np.ndarray] = []
    times: list[float] = []
    rotation, seeks = 0, 0
    chosen_id, chosen_rgb = None, None
    for target in targets:
        if should_seek(cursor, target, keyframes, start):
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            cursor = FrameCursor(decoded_frames(container, stream, path, stats))
            seeks += 1
        frame = advance(cursor, target)
        if frame is None:
            break
        stats["ended_early"] = cursor.ended
        if frame is not chosen_id:  # repeated targets on a short clip reuse one conversion
            chosen_id = frame
            chosen_rgb, rotation = to_rgb(frame)
        frames.append(chosen_rgb)
        times.append(float(frame.time))
    return frames, times, rotation, seeks


def _check_complete(path: Path, times, targets, duration, start, stats) -> None:
    if not times:
        if stats["bad_packets"]:
            raise UnsupportedCodec(path, "no video frame could be decoded")
        raise ZeroDuration(path, "the video stream holds no frames")
    if len(times) < len(targets):
        raise TruncatedMedia(path, f"video data ends at {times[-1] - start:.2f} s of a declared {duration:.2f} s")
    # Frames that stop long before the declared duration mean a cut file, not a short clip.
    missing = start + duration - stats["data_end"]
    if stats["ended_early"] and missing > max(1.0, 0.1 * duration):
        raise TruncatedMedia(path, f"video data ends at {stats['data_end'] - start:.2f} s of a declared {duration:.2f} s")
