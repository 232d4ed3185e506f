"""People in a clip: every face per frame, faces linked into tracks, and who is speaking.

    boxes = [detect_faces(frame) for frame in frames]        # every frontal face, (x, y, w, h)
    tracks = track_faces(boxes, times)                       # one `Track` per person, left to right
    voices = speaking(tracks, frames, times, waveform, 16000)  # who speaks, and how much

Detection: the frontal-face Haar cascade of `nanoemox.media.faces`, asked for every face
with a finer scale step and fewer votes than the largest-face search (`SCALE_STEP`,
`MIN_NEIGHBOURS`: more faces found, and more false ones, which the tracker then drops);
a box covering more than half of a larger box of the same frame is the same face found
twice.

Tracking (`track_faces`), a greedy tracker stated in full: frames are visited in time
order; each detection joins the live track whose last box overlaps it most (IoU >=
`TrackerSettings.min_iou`) or, failing that, whose last box centre is nearest within
`max_shift` of the box width; a track stays live for `max_gap` seconds without a
detection; a detection that joins no track starts one. Then tracks whose mean boxes
overlap by more than `same_face` (of the smaller) are one face found at two sizes: the
track seen most takes in the other. Tracks seen in fewer than `min_presence` of the frames
are dropped (false detections are brief), and a track's frames without a detection take
the box of its nearest detection. Track ids number the kept tracks left to right by their
mean box centre.

Who speaks (`speaking`): how open each track's mouth is in each frame (`mouth_opening`:
the share of dark pixels in the lower middle of its face box, the box smoothed over
neighbouring frames so that detector jitter does not move the region) is compared with
the loudness of the audio while that frame is on screen (`frame_rms`). Both are detrended
(slow changes, such as an expression setting in as the voice starts, are common to
everyone), and a track's speaking score is their correlation: a speaker's mouth opens and
closes with its syllables. The speaker is the track with the highest positive score; a
track's speaking share is the fraction of voiced seconds (`SEGMENT`) in which its mouth
follows the voice best. Limits: this reads mouths, not speech: someone chewing or
laughing silently in time with another voice can be taken for the speaker; a speaker
seen from the side, too small or covered is not a track at all (the cascade is frontal);
one voice is assumed at a time; with no audio, or audio without voice, nobody speaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from nanoemox.media.faces import DETECT_MAX_SIDE, search_faces

Box = tuple[int, int, int, int]  # x, y, w, h in pixels
SCALE_STEP = 1.05  # the cascade's scale step (the largest-face search uses 1.1: this finds more faces)
MIN_NEIGHBOURS = 2  # cascade votes a face needs (the largest-face search asks 5)
VOICED = 0.15  # a frame is voiced when the RMS around it is above this fraction of the peak RMS
SILENT_RMS = 1e-3  # audio whose peak RMS is below this holds no voice
SEGMENT = 1.0  # seconds per stretch when sharing out the voiced time
DETREND = 7  # frames of the moving average taken off mouth opening and loudness before comparing them
DARK = 0.6  # a mouth pixel is dark below this fraction of its region's median grey level
MOUTH = (0.22, 0.62, 0.78, 0.95)  # mouth region in box units: x0, y0, x1, y1 (a frontal box ends below the lips)
MOUTH_SIZE = (32, 16)  # the mouth region is compared at this size (w, h), whatever the face size


def detect_faces(frame: np.ndarray, min_size: int = 24, max_side: int = DETECT_MAX_SIDE) -> list[Box]:
    """Every frontal face in an RGB frame as (x, y, w, h) in pixels, largest first.

    The frame is scaled down to `max_side` for the search (faces smaller than `min_size`
    pixels at that scale are not found); a box covering most of a larger kept box is dropped.
    """
    found, scale = search_faces(frame, min_size, max_side, SCALE_STEP, MIN_NEIGHBOURS)
    boxes = sorted((tuple(int(round(v / scale)) for v in b) for b in found), key=lambda b: -b[2] * b[3])
    kept: list[Box] = []
    for box in boxes:
        if all(_overlap_of_smaller(box, k) <= 0.5 for k in kept):
            kept.append(box)
    return kept


def _intersection(a: Box, b: Box) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return float(max(0, w) * max(0, h))


def _overlap_of_smaller(a: Box, b: Box) -> float:
    return _intersection(a, b) / max(1.0, min(a[2] * a[3], b[2] * b[3]))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    inter = _intersection(a, b)
    return inter / max(1.0, a[2] * a[3] + b[2] * b[3] - inter)


@dataclass(frozen=True)
class TrackerSettings:
    """The tracker's thresholds (see the module docstring)."""

    min_iou: float = 0.3
    max_shift: float = 0.5   # centre distance, in widths of the track's last box
    max_gap: float = 1.0     # seconds a track waits for its next detection
    min_presence: float = 0.25  # fraction of the frames a kept track must be detected in
    same_face: float = 0.5  # tracks whose mean boxes overlap by more than this (of the smaller) are one face


@dataclass
class Track:
    """One person: `boxes[k]` is the face box at `times[k]` (filled where not detected),
    `detected[k]` whether the detector found it there."""

    id: int
    times: list[float]
    boxes: list[Box]
    detected: list[bool]

    def box_at(self, time: float) -> Box:
        """The box of the frame nearest to `time`."""
        k = int(np.argmin([abs(t - time) for t in self.times]))
        return self.boxes[k]

    def mean_box(self) -> Box:
        """The mean of the track's boxes."""
        return tuple(int(round(v)) for v in np.mean(np.asarray(self.boxes, np.float64), axis=0))


def track_faces(detections: list[list[Box]], times: list[float], settings: TrackerSettings = TrackerSettings()) -> list[Track]:
    """Tracks of the faces detected per frame (see the module docstring), ids left to right."""
    if len(detections) != len(times):
        raise ValueError(f"{len(detections)} frames of detections but {len(times)} frame times")
    live: list[dict] = []  # {"last": box, "seen": time, "hits": {frame index: box}}
    done: list[dict] = []
    for k, (boxes, time) in enumerate(zip(detections, times)):
        for track in [t for t in live if time - t["seen"] > settings.max_gap]:
            live.remove(track)
            done.append(track)
        pairs = []
        for d, box in enumerate(boxes):
            for j, track in enumerate(live):
                overlap = iou(box, track["last"])
                shift = _centre_distance(box, track["last"]) / max(1, track["last"][2])
                if overlap >= settings.min_iou or shift <= settings.max_shift:
                    pairs.append((-overlap, shift, d, j))
        used_d, used_j = set(), set()
        for _, _, d, j in sorted(pairs):
            if d in used_d or j in used_j:
                continue
            used_d.add(d)
            used_j.add(j)
            live[j]["last"], live[j]["seen"] = boxes[d], time
            live[j]["hits"][k] = boxes[d]
        for d, box in enumerate(boxes):
            if d not in used_d:
                live.append({"last": box, "seen": time, "hits": {k: box}})
    kept = [t for t in _merged(done + live, settings) if len(t["hits"]) >= settings.min_presence * max(1, len(times))]
    kept.sort(key=lambda t: np.mean([b[0] + b[2] / 2 for b in t["hits"].values()]))
    tracks = []
    for n, track in enumerate(kept):
        hits = track["hits"]
        known = sorted(hits)
        boxes = [hits[min(known, key=lambda i: (abs(i - k), i))] for k in range(len(times))]
        tracks.append(Track(n, list(times), boxes, [k in hits for k in range(len(times))]))
    return tracks


def _mean(hits: dict[int, Box]) -> Box:
    return tuple(float(v) for v in np.mean(np.asarray(list(hits.values()), np.float64), axis=0))


def _merged(tracks: list[dict], settings: TrackerSettings) -> list[dict]:
    """Tracks of one face joined: the one seen most takes in another whose mean box lies mostly
    (`same_face`) inside its own, for the frames it lacks. A face the detector finds at two sizes
    or offsets in turn would otherwise count as two people."""
    tracks = sorted(tracks, key=lambda t: -len(t["hits"]))
    out: list[dict] = []
    for track in tracks:
        host = next((o for o in out if _overlap_of_smaller(_mean(o["hits"]), _mean(track["hits"])) > settings.same_face),
                    None)
        if host is None:
            out.append({**track, "hits": dict(track["hits"])})
            continue
        for k, box in track["hits"].items():
            host["hits"].setdefault(k, box)
    return out


def _centre_distance(a: Box, b: Box) -> float:
    return float(np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2))


def smoothed_boxes(track: Track, radius: int = 5) -> list[Box]:
    """The track's boxes, each the median of its detected neighbours within `radius` frames."""
    out = []
    for k in range(len(track.boxes)):
        lo, hi = max(0, k - radius), min(len(track.boxes), k + radius + 1)
        near = [track.boxes[i] for i in range(lo, hi) if track.detected[i]] or [track.boxes[k]]
        out.append(tuple(int(round(v)) for v in np.median(np.asarray(near, np.float64), axis=0)))
    return out


def mouth_region(frame: np.ndarray, box: Box) -> np.ndarray:
    """The grey mouth region of a face box, resized to `MOUTH_SIZE`, as float32 in [0, 1]."""
    x, y, w, h = box
    x0, y0 = max(0, int(x + MOUTH[0] * w)), max(0, int(y + MOUTH[1] * h))
    x1, y1 = min(frame.shape[1], int(x + MOUTH[2] * w)), min(frame.shape[0], int(y + MOUTH[3] * h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros(MOUTH_SIZE[::-1], np.float32)
    gray = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, MOUTH_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def mouth_opening(frames: list[np.ndarray], track: Track) -> np.ndarray:
    """How open the track's mouth looks in each frame [K]: the fraction of its mouth region
    darker than `DARK` of the region's median (an open mouth shows its dark inside)."""
    out = []
    for frame, box in zip(frames, smoothed_boxes(track)):
        region = mouth_region(frame, box)
        out.append(float((region < DARK * max(float(np.median(region)), 1e-3)).mean()))
    return np.asarray(out, np.float64)


def frame_rms(waveform: np.ndarray | None, sample_rate: int, times: list[float], origin: float = 0.0) -> np.ndarray:
    """RMS of the waveform while each frame is on screen [K]: from its time for the shortest gap
    between two frame times (a frame's own duration when consecutive frames were taken); zeros
    without audio. `origin` is the time of the waveform's first sample."""
    if waveform is None or waveform.size == 0 or not times:
        return np.zeros(len(times))
    gaps = [b - a for a, b in zip(times, times[1:]) if b - a > 1e-6]
    shown = min(gaps) if gaps else 0.1
    out = []
    for t in times:
        lo = max(0, int(round((t - origin) * sample_rate)))
        hi = min(waveform.size, max(lo + 1, int(round((t + shown - origin) * sample_rate))))
        part = waveform[lo:hi]
        out.append(float(np.sqrt(np.mean(np.square(part, dtype=np.float64)))) if part.size else 0.0)
    return np.asarray(out, np.float64)


def detrended(x: np.ndarray, width: int = DETREND) -> np.ndarray:
    """`x` less its moving average over `width` frames (edges repeated): the fast changes only."""
    if x.size == 0 or width <= 1:
        return x
    padded = np.pad(x, (width // 2, width // 2), mode="edge")
    return x - np.convolve(padded, np.ones(width) / width, mode="valid")


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, 0 where either side does not vary."""
    if a.size < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class Voices:
    """Who speaks: `speaker` (a track id, or None: nobody, or no voice), per track its speaking
    `scores` (correlation of mouth opening with loudness) and `shares` (of the voiced
    seconds), and `voiced`, the fraction of frames with voice."""

    speaker: int | None
    scores: dict[int, float] = field(default_factory=dict)
    shares: dict[int, float] = field(default_factory=dict)
    voiced: float = 0.0


def speaking(tracks: list[Track], frames: list[np.ndarray], times: list[float], waveform: np.ndarray | None,
             sample_rate: int, origin: float = 0.0, segment: float = SEGMENT) -> Voices:
    """Who speaks in the frames (see the module docstring)."""
    loudness = frame_rms(waveform, sample_rate, times, origin)
    peak = float(loudness.max()) if loudness.size else 0.0
    nobody = Voices(None, {t.id: 0.0 for t in tracks}, {t.id: 0.0 for t in tracks}, 0.0)
    if not tracks or peak < SILENT_RMS or len(frames) < 3:
        return nobody
    voiced = loudness > VOICED * peak
    # Slow changes (an expression setting in while the voice starts) are common to everyone: only
    # the fast ones, syllable by syllable, are compared.
    opening = [detrended(mouth_opening(frames, t)) for t in tracks]
    loudness = detrended(loudness)
    scores = [_correlation(o, loudness) for o in opening]
    # Each voiced stretch of `segment` seconds goes to the track whose mouth follows the voice best there.
    stamps = np.asarray(times) - times[0]
    won = np.zeros(len(tracks))
    stretches = 0
    for k in range(int(np.ceil((stamps[-1] + 1e-9) / segment)) or 1):
        part = (stamps >= k * segment) & (stamps < (k + 1) * segment + 1e-9)
        if voiced[part].mean() < 0.5 if part.any() else True:
            continue
        stretches += 1
        local = [_correlation(o[part], loudness[part]) for o in opening]
        if max(local) > 0:
            won[int(np.argmax(local))] += 1
    best = int(np.argmax(scores))
    if scores[best] <= 0:
        return Voices(None, {t.id: round(s, 4) for t, s in zip(tracks, scores)}, nobody.shares,
                      round(float(voiced.mean()), 4))
    return Voices(tracks[best].id, {t.id: round(s, 4) for t, s in zip(tracks, scores)},
                  {t.id: round(float(w / max(1, stretches)), 4) for t, w in zip(tracks, won)},
                  round(float(voiced.mean()), 4))


def person_square(box: Box, width: int, height: int, scale: float) -> Box:
    """A square around a face box, `scale` times its width, moved (not cut) to lie inside the frame
    and no larger than it: what a one-person frame around this face would show."""
    x, y, w, h = box
    side = int(round(min(scale * w, width, height)))
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return x0, y0, side, side
