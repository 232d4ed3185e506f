"""The live protocol's message shapes, shared by the service (`nanoemox.serve.live`) and the
file client (`nanoemox.live.client`); docs/live.md describes it for other clients.

Media travel as binary WebSocket messages: one byte of kind (`FRAME` or `AUDIO`), the
time in seconds from the session's start as a little-endian float64, then the payload (an
encoded image, or mono little-endian float32 samples at the session's sample rate).
Everything else is one JSON object per text message, with a `type`.
"""

from __future__ import annotations

import struct

import numpy as np

FRAME, AUDIO = 1, 2
HEADER = struct.Struct("<Bd")  # kind, seconds

# close codes (RFC 6455): a normal end, a limit or a bad message, too large a message, busy, a server failure
CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_BUSY, CLOSE_ERROR = 1000, 1008, 1009, 1013, 1011


class ProtocolError(ValueError):
    """A message that breaks the protocol; `code` names the problem in the `error` message."""

    def __init__(self, message: str, code: str = "bad_message", close: int = CLOSE_POLICY):
        super().__init__(message)
        self.code, self.close = code, close


def pack_frame(seconds: float, image: bytes) -> bytes:
    return HEADER.pack(FRAME, seconds) + image


def pack_audio(seconds: float, samples: np.ndarray) -> bytes:
    return HEADER.pack(AUDIO, seconds) + np.ascontiguousarray(samples, "<f4").tobytes()


def unpack(message: bytes) -> tuple[int, float, bytes]:
    """(kind, seconds, payload) of a binary message; `ProtocolError` when it is not one of ours."""
    if len(message) <= HEADER.size:
        raise ProtocolError(f"a binary message of {len(message)} bytes is too short: it needs a kind byte, "
                            "a float64 time and a payload")
    kind, seconds = HEADER.unpack_from(message)
    if kind not in (FRAME, AUDIO):
        raise ProtocolError(f"unknown binary message kind {kind}; 1 is a video frame, 2 an audio chunk")
    if not (np.isfinite(seconds) and seconds >= 0):
        raise ProtocolError(f"a media time must be a finite number of seconds from the start, got {seconds}")
    payload = message[HEADER.size:]
    if kind == AUDIO and len(payload) % 4:
        raise ProtocolError(f"an audio chunk of {len(payload)} bytes is not a whole number of float32 samples")
    return kind, float(seconds), payload


def audio_samples(payload: bytes) -> np.ndarray:
    return np.frombuffer(payload, "<f4").astype(np.float32)
