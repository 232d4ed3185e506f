"""One call from media paths to model-ready arrays: `load_media`.

Output per sample (numpy, float32 unless said otherwise; F frames, C clips):
  pixel_values       [F, 3, 224, 224]  CLIP-normalised frames (scene branch)
  face_pixel_values  [F, 3, 224, 224]  ImageNet-normalised frames or face crops (face branch)
  audio_values       [C, clip_samples] normalised 16 kHz clips (speech branch)
  video_present      bool  False: no video given; both image arrays are zeros
  audio_present      bool  False: no audio given and the video has no audio stream; clips are zeros
  faces_found        bool [F]  per frame, a face image is real data: always True for
                     `face_input="frames"` and for pre-extracted crops, the detector's
                     verdict for `face_input="crops"`, False when there is no video

Missing media never turns into zeros silently: the flags above say so. A file
that is given but broken raises a `MediaError`; only a video without an audio
track falls back (to silence with `audio_present=False`), because that is common
and legitimate (silent clips, screen recordings).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from nanoemox.media import transforms
from nanoemox.media.audio import read_audio_clips
from nanoemox.media.container import DEFAULT_MAX_FILE_BYTES
from nanoemox.media.errors import NoAudioStream
from nanoemox.media.faces import crop_faces, load_face_crops
from nanoemox.media.video import read_frames

logger = logging.getLogger(__name__)

FACE_INPUTS = ("frames", "crops")


@dataclass
class MediaConfig:
    """Everything that decides how media become arrays (saved in processor_config.json)."""

    num_frames: int = 8
    image_size: int = 224
    clip_mean: tuple[float, ...] = transforms.CLIP_MEAN
    clip_std: tuple[float, ...] = transforms.CLIP_STD
    face_mean: tuple[float, ...] = transforms.IMAGENET_MEAN
    face_std: tuple[float, ...] = transforms.IMAGENET_STD
    sample_rate: int = 16000
    num_clips: int = 8
    clip_seconds: float = 2.0
    face_input: str = "frames"
    face_margin: float = 0.25
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES

    def __post_init__(self) -> None:
        if self.face_input not in FACE_INPUTS:
            raise ValueError(f"face_input must be one of {FACE_INPUTS}, got {self.face_input!r}")

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


@dataclass
class MediaInputs:
    pixel_values: np.ndarray
    face_pixel_values: np.ndarray
    audio_values: np.ndarray
    video_present: bool
    audio_present: bool
    faces_found: np.ndarray
    info: dict = field(default_factory=dict)

    def tensors(self) -> dict:
        """The model-side form of one sample's media: torch tensors and flags, unbatched."""
        import torch

        return {
            "pixel_values": torch.from_numpy(self.pixel_values),  # [F, 3, H, W]
            "face_pixel_values": torch.from_numpy(self.face_pixel_values),  # [F, 3, H, W]
            "audio_values": torch.from_numpy(self.audio_values),  # [C, S]
            "audio_present": torch.tensor(self.audio_present),
            "video_present": torch.tensor(self.video_present),
            "faces_found": torch.from_numpy(self.faces_found),  # [F]
        }


def scene_images(frames: list[np.ndarray], cfg: MediaConfig) -> tuple[np.ndarray, np.ndarray]:
    """(CLIP-normalised scene pixels [F, 3, S, S], the uint8 squares [F, S, S, 3] they came from)."""
    squares = np.stack([transforms.resize_shortest_center_crop(f, cfg.image_size) for f in frames])
    return transforms.normalize(squares, cfg.clip_mean, cfg.clip_std), squares


def face_images(frames: list[np.ndarray], squares: np.ndarray, cfg: MediaConfig,
                boxes: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Face-branch pixels (uint8 squares) from the sampled frames: the frames themselves or face crops.

    `boxes`: faces already detected in `frames` (see `crop_faces`), else detected here.
    """
    if cfg.face_input == "frames":
        return squares, np.ones(cfg.num_frames, bool)
    crops, found = crop_faces(frames, cfg.face_margin, boxes)
    # No face anywhere in the clip: the full frame (same view as the scene branch) stands in.
    images = [transforms.resize_square(c, cfg.image_size) if c is not None else squares[i] for i, c in enumerate(crops)]
    return np.stack(images), np.asarray(found, bool)


def _load_audio(video, audio, cfg: MediaConfig, info: dict) -> tuple[np.ndarray, bool]:
    source = audio if audio is not None else video
    if source is None:
        return silence(cfg), False
    try:
        clips = read_audio_clips(source, cfg.sample_rate, cfg.num_clips, cfg.clip_seconds, cfg.max_file_bytes)
    except NoAudioStream:
        if audio is not None:
            raise  # a separate audio file without audio is a broken sample, not a silent clip
        logger.debug("%s: no audio stream; using silence with audio_present=False", video)
        return silence(cfg), False
    info["audio_duration"] = clips.duration
    return clips.clips, True


def frames_to_images(frames: list[np.ndarray], cfg: MediaConfig,
                     boxes: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scene pixels, face pixels, faces_found) of sampled frames, both pixel sets normalised.

    `boxes`: faces already detected in the frames (a window reader's), else detected here.
    """
    pixel_values, squares = scene_images(frames, cfg)
    face_squares, faces_found = face_images(frames, squares, cfg, boxes=boxes)
    return pixel_values, transforms.normalize(face_squares, cfg.face_mean, cfg.face_std), faces_found


def silence(cfg: MediaConfig) -> np.ndarray:
    """Audio clips of silence [C, clip_samples] (what a sample without audio gets, with audio_present=False)."""
    return np.zeros((cfg.num_clips, cfg.clip_samples), np.float32)


def blank_images(cfg: MediaConfig) -> np.ndarray:
    """Zero images [F, 3, S, S] (what a sample without video gets, with video_present=False)."""
    return np.zeros((cfg.num_frames, 3, cfg.image_size, cfg.image_size), np.float32)


def load_media(
    video: str | os.PathLike | None = None,
    audio: str | os.PathLike | None = None,
    faces: str | os.PathLike | None = None,
    config: MediaConfig | None = None,
) -> MediaInputs:
    """Decode and preprocess one sample's media; any argument may be None (see module docstring)."""
    cfg = config or MediaConfig()
    info: dict = {}
    pixel_values, face_values = blank_images(cfg), blank_images(cfg)
    faces_found = np.zeros(cfg.num_frames, bool)
    if video is not None:
        sampled = read_frames(video, cfg.num_frames, cfg.max_file_bytes)
        info.update(video_duration=sampled.duration, frame_times=sampled.times, rotation=sampled.rotation)
        if faces is None:
            pixel_values, face_values, faces_found = frames_to_images(sampled.frames, cfg)
        else:
            pixel_values, _ = scene_images(sampled.frames, cfg)
    if faces is not None:
        crops = load_face_crops(faces, cfg.num_frames)
        squares = np.stack([transforms.resize_square(c, cfg.image_size) for c in crops])
        face_values = transforms.normalize(squares, cfg.face_mean, cfg.face_std)
        faces_found = np.ones(cfg.num_frames, bool)
    audio_values, audio_present = _load_audio(video, audio, cfg, info)
    return MediaInputs(pixel_values, face_values, audio_values, video is not None, audio_present, faces_found, info)
