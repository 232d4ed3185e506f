"""Predictor: batched generation equals one-by-one, closed-set scoring equals full forward passes,
per-record errors, progress, seeded sampling."""

from __future__ import annotations

import pytest
import torch

from nanoemox.data.manifest import Record
from nanoemox.inference import DEFAULT_MAX_NEW_TOKENS, Predictor, clip_records, default_candidates, summarize
from nanoemox.media.synth import write_video
from nanoemox.tasks import get_task


def _liven(predictor: Predictor, seed: int = 0) -> Predictor:
    """A freshly initialised tiny LM answers one repeated token; larger random weights give varied text."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in predictor.model.language.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.5)
    return predictor


@pytest.fixture(scope="module")
def predictor(model_dir):
    return _liven(Predictor.from_pretrained(model_dir, batch_size=3, max_new_tokens=10))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    a = write_video(folder / "a.mp4", seconds=1.0, fps=10, size=(32, 32), audio_rate=16000)
    b = write_video(folder / "b.mp4", seconds=0.6, fps=10, size=(40, 32))  # no audio track
    return folder, a, b


def _samples(predictor, clips):
    _, a, b = clips
    return [
        predictor.sample("mer", video=a, text="I really did not expect that", candidates=["happy", "sad"]),
        predictor.sample("mer", video=b, text="fine"),
        predictor.sample("mer", video=a, text="a much longer subtitle so that the prompts differ in length by a lot"),
    ]


def test_sample_matches_processor(predictor, clips):
    _, a, _ = clips
    ours = predictor.sample("mir", video=a, text="hello", candidates=["greet", "leave"])
    ref = predictor.processor.process("mir", video=a, text="hello", candidates=["greet", "leave"])
    assert set(ours) == set(ref)
    for key in ref:
        assert torch.equal(ours[key], ref[key]), key


def test_batched_generation_equals_one_by_one(predictor, clips):
    samples = _samples(predictor, clips)
    assert len({len(s["input_ids"]) for s in samples}) == 3  # left padding really happens
    batched = predictor.generate(samples, "mer")
    single = [predictor.generate([s], "mer")[0] for s in samples]
    assert batched == single
    assert any(text for text in batched)  # the comparison is not between empty answers


def test_budgets_and_seeded_sampling(model_dir, clips):
    plain = Predictor.from_pretrained(model_dir)
    assert plain.budget("erg") == DEFAULT_MAX_NEW_TOKENS["erg"] > plain.budget("mer")
    assert Predictor.from_pretrained(model_dir, max_new_tokens=5).budget("erg") == 5
    sampler = _liven(Predictor.from_pretrained(model_dir, do_sample=True, temperature=1.5, seed=3))
    sample = sampler.sample("ovmer", video=clips[1], text="so")
    first = sampler.generate([sample], "ovmer", max_new_tokens=12)
    again = sampler.generate([sample], "ovmer", max_new_tokens=12)
    assert first == again


def _full_pass_log_likelihood(predictor, sample, features, label, task):
    """Reference: the prompt and one candidate answer in a single forward pass, no cache."""
    tok = predictor.tokenizer
    answer = tok(get_task(task).format_target(label), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.cat([sample["input_ids"], torch.tensor(answer)])[None]
    model = predictor.model
    with torch.no_grad():
        embeds = model.inputs_embeds(ids, features=features)
        logits = model.language(inputs_embeds=embeds).logits[0].float()
    logits[:, list(model.placeholder_ids.values())] = float("-inf")
    logp = torch.log_softmax(logits, -1)
    start = len(sample["input_ids"]) - 1
    return sum(float(logp[start + i, t]) for i, t in enumerate(answer))


@pytest.mark.parametrize("task,candidates", [
    ("mir", ["ask for help", "greet", "complain"]),  # answers of different token lengths
    ("msa", ["positive", "negative", "neutral"]),
])
def test_score_one_pass_equals_separate_passes(predictor, clips, task, candidates):
    sample = predictor.sample(task, video=clips[1], text="well that went badly", candidates=candidates)
    result = predictor.score(sample, candidates, task)
    with torch.no_grad():
        features = predictor.model.encode_media(
            sample["pixel_values"][None], sample["face_pixel_values"][None], sample["audio_values"][None]
        )
    expected = torch.tensor([_full_pass_log_likelihood(predictor, sample, features, c, task) for c in candidates])
    got = torch.tensor([result["log_likelihoods"][c] for c in candidates])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert result["label"] == candidates[int(torch.argmax(expected))]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)
    assert list(result["probabilities"]) == candidates


def test_score_rejects_empty_candidates(predictor, clips):
    sample = predictor.sample("mer", video=clips[1])
    with pytest.raises(ValueError, match="candidate"):
        predictor.score(sample, ["  "], "mer")


def _record(rid, task, video, **kw):
    return Record(id=rid, dataset="t", split="test", task=task, media={"video": video}, **kw)


def test_predict_records_isolates_bad_files_and_keeps_order(predictor, clips):
    folder, _, _ = clips
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    records = [
        _record("r1", "mer", "a.mp4", text="hi"),
        _record("r2", "msa", "missing.mp4"),
        _record("r3", "eri", "b.mp4"),
        _record("r4", "mer", "broken.mp4"),
        _record("r5", "msa", "a.mp4"),
    ]
    seen = []
    results = list(predictor.predict_records(records, folder, progress=seen.append))
    assert [r.record.id for r in results] == ["r1", "r2", "r3", "r4", "r5"]
    assert sum(seen) == 5
    errors = {r.record.id: r.error for r in results if r.error}
    assert set(errors) == {"r2", "r4"}
    assert "missing.mp4" in errors["r2"] and "broken.mp4" in errors["r4"]
    for record, text, error in results:  # unpacks as a triple
        assert (text is None) == (error is not None)
    flags = {r.record.id: r.flags for r in results}
    assert flags["r1"]["audio_present"] is True and flags["r3"]["audio_present"] is False
    # Greedy answers do not depend on batch composition.
    alone = list(predictor.predict_records([records[2]], folder))[0]
    assert alone.text == results[2].text


def test_predict_records_filters_tasks_and_scores(predictor, clips):
    folder, _, _ = clips
    records = [_record("m", "mer", "a.mp4", candidates=["calm", "angry"]), _record("e", "eri", "a.mp4"),
               _record("s", "msa", "b.mp4")]
    only = list(predictor.predict_records(records, folder, tasks=["mer", "msa"], decode="score"))
    assert [p.record.id for p in only] == ["m", "s"]
    assert only[0].text in ("calm", "angry") and set(only[0].scores) == {"calm", "angry"}
    assert only[1].text in default_candidates("msa")
    with pytest.raises(ValueError, match="unknown task"):
        list(predictor.predict_records(records, folder, tasks=["nope"]))


def test_summarize_clip(predictor, clips):
    _, a, _ = clips
    records = clip_records(a, ["msa", "mer", "erg"], subtitle="oh no")
    assert records[1].candidates == default_candidates("mer") and records[0].candidates is None
    result = summarize(list(predictor.predict_records(records, "/")))
    assert result["id"] == "a" and set(result["answers"]) == {"msa", "mer", "erg"}
    assert set(result["answers"]["erg"]["parsed"]) == {"think", "reply", "emotion"}
    assert result["faces_found"] == result["frames"] == 8 and result["audio_present"] is True
