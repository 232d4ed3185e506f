"""Media pipeline: video frames, speech clips and faces from files, as model-ready arrays.

`load_media(video, audio, faces, config)` is the entry point; `MediaConfig` holds
every setting; all input problems raise subclasses of `MediaError`.
"""

from nanoemox.media.errors import (
    CorruptMedia,
    MediaError,
    MediaNotFound,
    MediaTooLarge,
    NoAudioStream,
    NoVideoStream,
    TruncatedMedia,
    UnsupportedCodec,
    ZeroDuration,
)
from nanoemox.media.pipeline import FACE_INPUTS, MediaConfig, MediaInputs, load_media

__all__ = [
    "FACE_INPUTS",
    "CorruptMedia",
    "MediaConfig",
    "MediaError",
    "MediaInputs",
    "MediaNotFound",
    "MediaTooLarge",
    "NoAudioStream",
    "NoVideoStream",
    "TruncatedMedia",
    "UnsupportedCodec",
    "ZeroDuration",
    "load_media",
]
