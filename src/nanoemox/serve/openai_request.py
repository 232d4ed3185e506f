"""The body of `POST /v1/chat/completions` (OpenAI's and vLLM's fields, validated by pydantic)
and how a conversation becomes one task of one clip (`read_turn`).

Which task answers (documented in docs/inference.md):
1. the extension field `task` (a task name: msa, mer, ovmer, eri, mir, erg);
2. else the last user message asks a task by its identifier (`[Recognition] ...`) or by one of
   its instructions (`tasks.requests.read_request`);
3. else the message is free text: the empathetic reply (ERG), as `nanoemox chat`.
What is left of the last user message's text is the subtitle (ERG: the speaker's turn; a clip
without text is answered from the clip alone).
ERG reads the earlier user and assistant turns as the dialogue (speaker, listener); the
other tasks read only the last user message, as `nanoemox analyze` reads one clip. System
and developer messages are accepted and not shown to the model, which was trained without
one. Media are read from the last user message only: one video (or image) and one audio
part at most, together one clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from nanoemox.serve.openai_errors import OpenAIError
from nanoemox.tasks import CANDIDATE_TASKS, REPLY_TASK, TASK_NAMES, get_task
from nanoemox.tasks.requests import read_request

MAX_STOP_STRINGS = 4
MEDIA_PART_TYPES = ("video_url", "image_url", "input_audio", "audio_url")


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class URLRef(_Part):
    url: str = Field(description="a data: URL, a file:// path under --allowed-local-media-path, or http(s) "
                                 "with --allow-remote-media")


class TextPart(_Part):
    type: Literal["text"]
    text: str


class VideoURLPart(_Part):
    type: Literal["video_url"]
    video_url: URLRef


class ImageURLPart(_Part):
    type: Literal["image_url"]
    image_url: URLRef


class AudioURLPart(_Part):
    type: Literal["audio_url"]
    audio_url: URLRef


class InputAudio(_Part):
    data: str = Field(description="base64-encoded audio file")
    format: str = Field(description="its format: wav, mp3, flac, m4a, ogg, opus or aac")


class InputAudioPart(_Part):
    type: Literal["input_audio"]
    input_audio: InputAudio


Part = Annotated[Union[TextPart, VideoURLPart, ImageURLPart, AudioURLPart, InputAudioPart], Field(discriminator="type")]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[Part], None] = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions body; fields the model cannot honour are refused by `read_turn`, others ignored."""

    model_config = ConfigDict(extra="allow")

    messages: list[Message] = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2, description="0 or absent: greedy (as the CLI); > 0: sampling")
    top_p: float | None = Field(None, gt=0, le=1, description="acts only when sampling")
    seed: int | None = Field(None, description="sampling seed (default: the server's --seed)")
    stop: Union[str, list[str], None] = None
    n: int | None = Field(None, ge=1, description="1 only")
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None
    # extensions (the openai client sends them with extra_body=...)
    task: str | None = Field(None, description="extension: the task to run (a name GET /v1/tasks lists: "
                                                 + ", ".join(TASK_NAMES) + ", ...)")
    candidates: list[str] | None = Field(None, description="extension: MER emotions or MIR intents to choose from "
                                                           "(the tasks GET /v1/tasks lists with takes_candidates)")
    decode: Literal["generate", "score"] = Field("generate", description="extension: score answers a closed-set "
                                                 "task with its most likely candidate")
    per_person: bool = Field(False, description="extension: also find the people in the clip and answer the window "
                                                "tasks per person (the choice's nanoemox.people; docs/people.md)")


@dataclass
class MediaRef:
    """One media part: its kind (video, image, audio), where it is (`url`, or base64 `data` and `format`), its param path."""

    kind: str
    param: str
    url: str | None = None
    data: str | None = None
    format: str | None = None


@dataclass
class Turn:
    """What the model is asked: a task, the subtitle or speaker turn, the dialogue so far, the clip's media."""

    task: str
    text: str | None
    history: list[dict] = field(default_factory=list)
    media: list[MediaRef] = field(default_factory=list)
    candidates: list[str] | None = None
    ignored: dict[str, int] = field(default_factory=dict)  # what the model does not read, by kind


def read_turn(body: ChatCompletionRequest) -> Turn:
    """The task, text, dialogue and media of a request (see the module docstring); OpenAIError 400 when unusable."""
    refuse_unsupported(body)
    last_index = len(body.messages) - 1
    last = body.messages[-1]
    if last.role != "user":
        raise OpenAIError(400, f"the last message must be the user's (got {last.role!r}): it is the turn to answer",
                          f"messages[{last_index}].role")
    text, media = _message_content(last, last_index)
    asked = read_request(text)
    task = _task_name(body.task) if body.task is not None else (asked.task if asked else REPLY_TASK)
    candidates = body.candidates
    if asked is not None and asked.task == task:
        text = asked.text
        candidates = candidates or asked.candidates
    if body.per_person and body.stream:
        raise OpenAIError(400, "per_person answers come in one response: leave out stream", "per_person")
    if body.per_person and not any(m.kind == "video" for m in media):
        raise OpenAIError(400, "per_person finds people in a video: send a video_url part", "per_person")
    if candidates is not None and not get_task(task).takes_candidates:
        raise OpenAIError(400, f"candidates apply to {' and '.join(CANDIDATE_TASKS)} only, not {task}", "candidates")
    turn = Turn(task, text, media=media, candidates=candidates)
    earlier = body.messages[:-1]
    turn.ignored["system"] = sum(m.role in ("system", "developer") for m in earlier)
    dialogue = [m for m in earlier if m.role in ("user", "assistant")]
    if get_task(task).dialogue:
        turn.history = [{"role": "speaker" if m.role == "user" else "listener", "text": _text_of(m)} for m in dialogue]
        turn.ignored["earlier_media"] = sum(isinstance(p, _MEDIA_TYPES) for m in dialogue
                                            if isinstance(m.content, list) for p in m.content)
    else:
        turn.ignored["earlier_turns"] = len(dialogue)
    if not text and not media:
        raise OpenAIError(400, "nothing to answer: the last user message has neither text nor media",
                          f"messages[{last_index}].content")
    return turn


def refuse_unsupported(body: ChatCompletionRequest) -> None:
    """400 for settings this model cannot honour, naming the field."""
    if body.n not in (None, 1):
        raise OpenAIError(400, f"n={body.n}: one answer per request (n=1); send the request again for more", "n")
    if body.tools:
        raise OpenAIError(400, "tools are not supported by this model", "tools")
    if body.response_format and body.response_format.get("type", "text") != "text":
        raise OpenAIError(400, "only text responses are supported (response_format type text)", "response_format")
    if body.logit_bias:
        raise OpenAIError(400, "logit_bias is not supported", "logit_bias")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(body, name) not in (None, 0, 0.0):
            raise OpenAIError(400, f"{name} is not supported (leave it out or 0)", name)
    if body.top_logprobs and not body.logprobs:
        raise OpenAIError(400, "top_logprobs needs logprobs=true", "top_logprobs")
    stops = stop_strings(body)
    if len(stops) > MAX_STOP_STRINGS or not all(stops):
        raise OpenAIError(400, f"stop: at most {MAX_STOP_STRINGS} non-empty strings", "stop")


def stop_strings(body: ChatCompletionRequest) -> list[str]:
    return [body.stop] if isinstance(body.stop, str) else list(body.stop or [])


_MEDIA_TYPES = (VideoURLPart, ImageURLPart, AudioURLPart, InputAudioPart)


def _task_name(name: str) -> str:
    task = name.strip().lower()
    if task not in TASK_NAMES:
        raise OpenAIError(400, f"unknown task {name!r}; choose from {', '.join(TASK_NAMES)}", "task")
    return task


def _text_of(message: Message) -> str:
    if isinstance(message.content, list):
        return "\n".join(p.text for p in message.content if isinstance(p, TextPart)).strip()
    return (message.content or "").strip()


def _message_content(message: Message, index: int) -> tuple[str | None, list[MediaRef]]:
    """(text, media parts) of the last user message; 400 for more than one video/image or audio part."""
    media: list[MediaRef] = []
    for j, part in enumerate(message.content if isinstance(message.content, list) else []):
        param = f"messages[{index}].content[{j}]"
        if isinstance(part, VideoURLPart):
            media.append(MediaRef("video", param, url=part.video_url.url))
        elif isinstance(part, ImageURLPart):
            media.append(MediaRef("image", param, url=part.image_url.url))
        elif isinstance(part, AudioURLPart):
            media.append(MediaRef("audio", param, url=part.audio_url.url))
        elif isinstance(part, InputAudioPart):
            media.append(MediaRef("audio", param, data=part.input_audio.data, format=part.input_audio.format))
    visual = [m for m in media if m.kind in ("video", "image")]
    sound = [m for m in media if m.kind == "audio"]
    if len(visual) > 1 or len(sound) > 1:
        extra = (visual[1:] + sound[1:])[0]
        raise OpenAIError(400, "one clip per message: at most one video (or image) part and one audio part",
                          extra.param)
    return _text_of(message) or None, media
