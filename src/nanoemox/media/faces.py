"""Face crops for the face branch: OpenCV Haar detection or pre-extracted crops.

By default the face branch reads the sampled frames themselves (as the paper
does); this module serves the `face_input="crops"` option. The detector is the
frontal-face Haar cascade shipped inside the opencv-python-headless wheel
(`cv2.data.haarcascades`), loaded once per process. For every frame the largest
face is kept and cropped with a 25% margin on each side; a frame without a face
borrows the box of the nearest frame that has one, and when no frame has a face
the full frame is used. `found` records per frame whether its own face was found.

Pre-extracted aligned crops (a folder of images as OpenFace writes them, or an
.npy stack [N, H, W(, 3)]) are sampled uniformly to the frame count.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from nanoemox.media.errors import CorruptMedia, MediaNotFound, ZeroDuration

CASCADE_FILE = "haarcascade_frontalface_default.xml"
IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg", ".webp")
DETECT_MAX_SIDE = 640  # frames are scaled down to this for detection (speed), boxes scaled back


@functools.lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    # Cached per process: DataLoader workers each load it once, on first use.
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, CASCADE_FILE))
    if cascade.empty():
        raise RuntimeError(f"cannot load the OpenCV face cascade {CASCADE_FILE} from {cv2.data.haarcascades}")
    return cascade


def search_faces(frame: np.ndarray, min_size: int, max_side: int, scale_step: float = 1.1,
                 min_neighbours: int = 5) -> tuple[np.ndarray, float]:
    """The cascade's face boxes in an RGB frame scaled down to `max_side` (equalised grey), and that scale.

    Boxes are (x, y, w, h) at the search scale: divide by the scale for frame pixels.
    """
    h, w = frame.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    boxes = _cascade().detectMultiScale(gray, scaleFactor=scale_step, minNeighbors=min_neighbours,
                                        minSize=(min_size, min_size))
    return boxes, scale


def detect_largest_face(frame: np.ndarray, min_size: int = 24, max_side: int = DETECT_MAX_SIDE) -> tuple[int, int, int, int] | None:
    """The largest frontal face in an RGB frame as (x, y, w, h) in pixels, or None.

    The frame is scaled down to `max_side` for the search; faces smaller than `min_size`
    pixels at that scale are not found.
    """
    boxes, scale = search_faces(frame, min_size, max_side)
    if len(boxes) == 0:
        return None
    x, y, bw, bh = max(boxes, key=lambda b: int(b[2]) * int(b[3]))
    return tuple(int(round(v / scale)) for v in (x, y, bw, bh))


def expand_box(box: tuple[int, int, int, int], width: int, height: int, margin: float = 0.25) -> tuple[int, int, int, int]:
    """Grow (x, y, w, h) by `margin` of its size on each side, clipped to the image -> (x0, y0, x1, y1)."""
    x, y, w, h = box
    x0, y0 = int(round(x - margin * w)), int(round(y - margin * h))
    x1, y1 = int(round(x + w + margin * w)), int(round(y + h + margin * h))
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def fill_missing(boxes: list) -> list:
    """Give every None entry the box of the nearest frame that has one (earlier frame on ties)."""
    known = [i for i, b in enumerate(boxes) if b is not None]
    if not known:
        return list(boxes)
    return [b if b is not None else boxes[min(known, key=lambda k: (abs(k - i), k))] for i, b in enumerate(boxes)]


def crop_faces(frames: list[np.ndarray], margin: float = 0.25,
               boxes: list[tuple[int, int, int, int] | None] | None = None) -> tuple[list[np.ndarray | None], list[bool]]:
    """Per frame: the face crop (None where no frame had a face: use the full frame) and whether it was found.

    `boxes`: the largest face per frame when already detected (`detect_largest_face`), else detected here.
    """
    if boxes is None:
        boxes = [detect_largest_face(f) for f in frames]
    found = [b is not None for b in boxes]
    crops: list[np.ndarray | None] = []
    for frame, box in zip(frames, fill_missing(boxes)):
        if box is None:
            crops.append(None)
            continue
        x0, y0, x1, y1 = expand_box(box, frame.shape[1], frame.shape[0], margin)
        crops.append(frame[y0:y1, x0:x1])
    return crops, found


def _uniform_indices(count: int, num: int) -> np.ndarray:
    return np.round(np.linspace(0, count - 1, num)).astype(np.int64)


def load_face_crops(path: str | os.PathLike, num_frames: int = 8) -> list[np.ndarray]:
    """Pre-extracted crops from a folder of images or an .npy stack -> `num_frames` uint8 RGB arrays."""
    path = Path(path)
    if not path.exists():
        raise MediaNotFound(path, "no such face-crop folder or file")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ZeroDuration(path, f"the folder holds no face images ({', '.join(IMAGE_SUFFIXES)})")
        chosen = [files[i] for i in _uniform_indices(len(files), num_frames)]
        try:
            return [np.asarray(Image.open(f).convert("RGB")) for f in chosen]
        except (OSError, ValueError) as exc:
            raise CorruptMedia(path, f"a face image cannot be read ({exc})") from None
    try:
        stack = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CorruptMedia(path, f"not a readable .npy array ({exc})") from None
    if stack.ndim == 3:
        stack = np.repeat(stack[..., None], 3, axis=3)  # grayscale [N, H, W] -> [N, H, W, 3]
    if stack.ndim != 4 or stack.shape[0] == 0 or stack.shape[3] not in (1, 3):
        raise CorruptMedia(path, f"expected a face stack [N, H, W] or [N, H, W, 3], got {stack.shape}")
    if stack.shape[3] == 1:
        stack = np.repeat(stack, 3, axis=3)
    if stack.dtype != np.uint8:  # float stacks in [0, 1] are scaled to bytes
        stack = np.clip(stack * (255.0 if stack.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return [stack[i] for i in _uniform_indices(stack.shape[0], num_frames)]
