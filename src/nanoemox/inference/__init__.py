"""Batched inference with a trained Nano-EmoX model: the one `Predictor` that the
command line, the HTTP service and the evaluation harness share.

    predictor = Predictor.from_pretrained("runs/p3/final")
    sample = predictor.sample("mer", video="a.mp4", text="I did it!", candidates=["happy", "sad"])
    texts = predictor.generate([sample], "mer")
    for record, text, error in predictor.predict_records(records, root):
        ...
    predictor.score(sample, ["happy", "sad"], "mer")   # {"label": ..., "probabilities": {...}}

Two ways to answer:
- generation: plain greedy (or seeded sampling) decoding of left-padded batches, only the
  new tokens decoded, with a per-task token budget (the caller's, else the model folder's
  measured one, else `DEFAULT_MAX_NEW_TOKENS`; see `nanoemox.decoding`); an answer
  that reaches its budget without EOS is marked truncated;
- closed-set scoring (MSA, MER, MIR): every candidate answer, rendered exactly as
  training renders targets and followed by EOS, is ranked by its log-likelihood. The
  prompt runs through the language model once; its KV cache is then repeated over the
  candidates, which are scored together in one batched pass. The answer is always one
  of the candidates, so it can never be unparseable.

A record whose media cannot be read gives an error for that record only; the rest of
the batch goes on. Library code: no printing, callers report progress and errors.

Several tasks asked of one clip (`analyze`, the service, a manifest listing a clip's
tasks) share its work: the encoders run once, the prompt up to the task instruction is
prefilled once and its KV cache reused by every task, whose answers are scored from it
or decoded together in one batch (`multitask`).

How it is put together (docs/inference.md, "How inference is put together"):
`session` (`Session`: the model, processor, device, precision and locks; every model
call), `sources` (`MediaSource`, `FeatureCacheSource`: where samples come from),
`runner` (`Runner`: records to predictions, batching, prefetch), `multitask` (the
shared clip path), `prefetch` (the one background reader), `predictor` (`Predictor`,
the public entry point composing them; `FeatureCachePredictor`), `common` (constants,
device and dtype, results), `clips` (clip records, `summarize`, `analyze`), `chat`
(`chat_reply`, `Conversation`). Decoding settings and budgets are one
`nanoemox.decoding.Decoding` value.
"""

from nanoemox.decoding import DEFAULT_MAX_NEW_TOKENS, Decoding
from nanoemox.inference.chat import Conversation, chat_reply
from nanoemox.inference.clips import analyze, answer_entry, clip_records, summarize
from nanoemox.inference.common import (
    AUDIO_EXTENSIONS, DECODE_MODES, SCORABLE_TASKS, VIDEO_EXTENSIONS, Prediction, default_candidates, media_for,
    pick_device, pick_dtype,
)
from nanoemox.inference.predictor import FeatureCachePredictor, Predictor
from nanoemox.inference.runner import Runner
from nanoemox.inference.session import Session
from nanoemox.inference.sources import FeatureCacheSource, MediaSource

__all__ = [
    "AUDIO_EXTENSIONS", "DECODE_MODES", "DEFAULT_MAX_NEW_TOKENS", "SCORABLE_TASKS", "VIDEO_EXTENSIONS", "Conversation",
    "Decoding", "FeatureCachePredictor", "FeatureCacheSource", "MediaSource", "Prediction", "Predictor", "Runner",
    "Session", "analyze", "answer_entry", "chat_reply", "clip_records",
    "default_candidates", "media_for", "pick_device", "pick_dtype", "summarize",
]
