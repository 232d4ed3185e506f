"""Typed errors of the media pipeline.

Every problem with an input file raises a subclass of `MediaError`. The message
always names the file, says what is wrong with it and what to do about it, so a
failing sample in a long training run can be found and fixed without a debugger.
The errors pickle cleanly, so they cross DataLoader worker boundaries intact.
"""

from __future__ import annotations

import os


class FileProblem(Exception):
    """A problem with one file: "PATH: PROBLEM; ADVICE", where a subclass sets the default advice.

    Shared by the media errors and the feature cache's damaged-file error.
    """

    advice = "check the file"

    def __init__(self, path: str | os.PathLike, problem: str, advice: str | None = None):
        self.path = str(path)
        self.problem = problem
        if advice is not None:
            self.advice = advice
        super().__init__(f"{self.path}: {problem}; {self.advice}")

    def __reduce__(self):
        # Exceptions pickle as cls(*args); ours take (path, problem, advice).
        return (type(self), (self.path, self.problem, self.advice))


class MediaError(FileProblem):
    """Base class: `path` is the offending file, `problem` a short description."""

    advice = "check the file or remove the sample from the manifest"


class MediaNotFound(MediaError):
    advice = "check the data root and the media path in the manifest"


class UnusableInput(MediaError):
    """A path given as input that holds nothing to read: a folder without media, an unreadable file."""

    advice = "give a video or audio file, or a folder holding some"


class CorruptMedia(MediaError):
    advice = "the container cannot be read; re-download or re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)"


class TruncatedMedia(MediaError):
    advice = "the file ends early (interrupted download or copy?); fetch it again"


class ZeroDuration(MediaError):
    advice = "the stream holds no decodable frames or samples; drop the sample or supply another file"


class NoVideoStream(MediaError):
    advice = "pass the file as audio instead, or give a video file"


class UnsupportedCodec(MediaError):
    advice = "this build of FFmpeg cannot decode it; re-encode to H.264/AAC (ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4)"


class MediaTooLarge(MediaError):
    advice = "raise max_file_bytes in the processor config if the file is genuine, or cut the clip first"


class NoAudioStream(MediaError):
    advice = "give a separate audio file, or leave the audio out (the sample is then marked audio_present=False)"
