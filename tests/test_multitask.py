"""Several tasks of one clip: one encoder pass, one shared prefix, the same answers as task by task."""

from __future__ import annotations

import pytest
import torch

from nanoemox.inference import Predictor, clip_records
from nanoemox.inference.multitask import common_prefix
from nanoemox.media.synth import write_video
from nanoemox.tasks import TASK_NAMES


def _liven(predictor):
    torch.manual_seed(0)
    with torch.no_grad():
        for param in predictor.model.language.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.5)  # varied answers, so that equality means something
    return predictor


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return [write_video(folder / "a.mp4", seconds=1.0, fps=10, size=(32, 32), audio_rate=16000),
            write_video(folder / "b.mp4", seconds=0.6, fps=10, size=(40, 32), audio_rate=16000)]


def _records(clips):
    records = []
    for k, clip in enumerate(clips):
        records += clip_records(clip, TASK_NAMES, clip_id=f"c{k}", subtitle=f"I never thought this would happen {k}")
    for r in records:
        r.id = f"{r.id}_{r.task}"
    return records


@pytest.mark.parametrize("decode", ["generate", "score"])
def test_shared_clip_answers_equal_task_by_task(model_dir, clips, decode):
    shared = _liven(Predictor.from_pretrained(model_dir, batch_size=12, max_new_tokens={"erg": 12, "eri": 9}))
    alone = _liven(Predictor.from_pretrained(model_dir, batch_size=1, max_new_tokens={"erg": 12, "eri": 9}))
    calls = []
    encode = shared.model.encode_media
    shared.model.encode_media = lambda *a, **k: calls.append(1) or encode(*a, **k)
    records = _records(clips)
    together = {p.record.id: p for p in shared.predict_records(records, ".", decode=decode)}
    one_by_one = {p.record.id: p for p in alone.predict_records(records, ".", decode=decode)}
    assert len(calls) == 2  # the encoders ran once per clip, for six tasks each
    texts = {p.text for p in together.values()}
    assert len(texts) > 3  # varied answers
    for rid, p in together.items():
        q = one_by_one[rid]
        assert p.error is None and p.text == q.text, rid
        assert (p.truncated, p.max_new_tokens) == (q.truncated, q.max_new_tokens)
        if p.scores is not None:
            assert p.scores.keys() == q.scores.keys()
            assert all(abs(p.scores[k] - q.scores[k]) < 1e-4 for k in p.scores), rid


def test_common_prefix_leaves_a_suffix():
    assert common_prefix([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # identical prompts still get a one-token suffix
