"""Empathetic chat (ERG): the listener's next turn, and a conversation that keeps its history."""

from __future__ import annotations

import os
from typing import Any, Sequence

from nanoemox.inference.common import media_flags, media_for
from nanoemox.inference.predictor import Predictor
from nanoemox.tasks import REPLY_TASK, get_task


def chat_reply(
    predictor: Predictor,
    message: str,
    history: Sequence[dict] | None = None,
    clip: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The listener's next turn (ERG): {"reply", "think", "emotion", "text" (raw), "flags"}.

    `history` lists earlier turns as [{"role": "speaker" | "listener", "text": ...}],
    oldest first, the way the model was trained; `message` is the speaker's new turn.
    """
    for i, turn in enumerate(history or []):
        if not isinstance(turn, dict) or turn.get("role") not in ("speaker", "listener") or not isinstance(turn.get("text"), str):
            raise ValueError(f"history turn {i} must be {{'role': 'speaker' | 'listener', 'text': str}}, got {turn!r}")
    media = media_for(clip) if clip is not None else {}
    sample = predictor.sample(
        REPLY_TASK, video=media.get("video"), audio=media.get("audio"), text=message, history=list(history or [])
    )
    text = predictor.generate([sample], REPLY_TASK)[0]
    parsed = get_task(REPLY_TASK).parse(text)
    return {**parsed, "text": text, "flags": media_flags(sample)}


class Conversation:
    """A multi-turn empathetic conversation: keeps the history as the model was trained on it."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.history: list[dict[str, str]] = []

    def send(self, message: str, clip: str | os.PathLike | None = None) -> dict[str, Any]:
        """Answer `message` (with an optional clip) and record both turns; the reply's reasoning is not kept."""
        answer = chat_reply(self.predictor, message, self.history, clip)
        self.history.append({"role": "speaker", "text": message})
        self.history.append({"role": "listener", "text": answer["reply"]})
        return answer

    def reset(self) -> None:
        self.history.clear()
