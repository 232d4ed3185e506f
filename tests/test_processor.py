"""NanoEmoXProcessor: prompt layout, labels, truncation, batching, media flags, save/load, pickling."""

from __future__ import annotations

import pickle
import random

import pytest
import torch

from nanoemox.config import MODALITIES, paper, tiny
from nanoemox.data.manifest import Record
from nanoemox.media import MediaNotFound, synth
from nanoemox.processor import ASSISTANT, IGNORE_INDEX, NanoEmoXProcessor
from nanoemox.tasks import get_task
from nanoemox.tokenizer import build_tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer(tiny())


@pytest.fixture(scope="module")
def processor(tokenizer):
    return NanoEmoXProcessor.from_config(tiny(), tokenizer)


def _runs(ids: list[int], placeholder_ids: dict[str, int]) -> list[tuple[str, int]]:
    """(modality, run length) for each run of placeholder tokens, in order."""
    names = {v: k for k, v in placeholder_ids.items()}
    runs: list[tuple[str, int]] = []
    for prev, cur in zip([None] + ids[:-1], ids):
        if cur in names:
            if prev == cur:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((names[cur], 1))
    return runs


@pytest.mark.parametrize("preset", [paper, tiny])
def test_placeholders_in_order_with_model_counts(tokenizer, preset):
    config = preset()
    proc = NanoEmoXProcessor(tokenizer, placeholders=config.placeholders, token_counts=config.token_counts(), max_length=512)
    ids = proc.encode_text("mer", text="hello there").input_ids
    runs = _runs(ids, proc.placeholder_ids)
    assert runs == [(m, config.token_counts()[m]) for m in MODALITIES]
    assert sum(n for _, n in runs) == 69


def test_prompt_text_order_and_labels(processor, tokenizer):
    encoded = processor.encode_text("mer", text="I did it!", candidates=["happy", "sad"], target="happy")
    ids, labels = encoded.input_ids, encoded.labels
    assert len(ids) == len(labels)
    prompt = tokenizer.decode([i for i in ids if i not in processor.placeholder_ids.values()])
    instruction = get_task("mer").instruction(variant=0, candidates=["happy", "sad"])
    assert prompt.startswith("###Human:")
    assert prompt.index("I did it!") < prompt.index(instruction) < prompt.index("###Assistant:")
    supervised = [i for i, lab in zip(ids, labels) if lab != IGNORE_INDEX]
    assert supervised == ids[len(ids) - len(supervised):]  # answer is the tail
    assert supervised[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(supervised[:-1]) == get_task("mer").format_target("happy")
    assert all(lab == IGNORE_INDEX for i, lab in zip(ids, labels) if i in processor.placeholder_ids.values())


def test_evaluation_prompt_has_no_labels_and_ends_with_assistant(processor, tokenizer):
    encoded = processor.encode_text("ovmer", text="hmm")
    assert encoded.labels is None
    assert tokenizer.decode(encoded.input_ids).endswith(ASSISTANT)


def test_training_draws_paraphrases_evaluation_is_fixed(processor):
    eval_ids = {tuple(processor.encode_text("eri", text="x").input_ids) for _ in range(3)}
    assert len(eval_ids) == 1
    drawn = {tuple(processor.encode_text("eri", text="x", train=True, rng=random.Random(s)).input_ids) for s in range(20)}
    assert len(drawn) > 1
    a = processor.encode_text("eri", text="x", train=True, rng=random.Random(7)).input_ids
    b = processor.encode_text("eri", text="x", train=True, rng=random.Random(7)).input_ids
    assert a == b


def test_long_subtitle_is_cut_never_placeholders(tokenizer):
    config = tiny()
    proc = NanoEmoXProcessor(tokenizer, placeholders=config.placeholders, token_counts=config.token_counts(), max_length=200)
    text = " ".join(f"word{i}" for i in range(500)) + " FINALWORD"
    encoded = proc.encode_text("mer", text=text, target="happy")
    assert len(encoded.input_ids) == 200 and encoded.truncated > 0
    assert sum(n for _, n in _runs(encoded.input_ids, proc.placeholder_ids)) == 69
    decoded = tokenizer.decode(encoded.input_ids)
    assert "FINALWORD" in decoded and "word0 " not in decoded  # oldest tokens dropped first
    assert decoded.endswith(get_task("mer").format_target("happy") + tokenizer.eos_token)


def test_dialogue_history_drops_oldest_turns(tokenizer):
    config = tiny()
    # Without history the prompt is about 257 tiny-tokenizer tokens; each turn about 42 more.
    proc = NanoEmoXProcessor(tokenizer, placeholders=config.placeholders, token_counts=config.token_counts(), max_length=400)
    history = [{"role": "speaker" if i % 2 == 0 else "listener", "text": f"turn number {i} " + "blah " * 10} for i in range(12)]
    target = {"event_scenario": "e", "speaker_emotion": "sad", "emotion_cause": "c", "goal_to_response": "g", "reply": "r"}
    encoded = proc.encode_text("erg", text="the latest words", history=history, target=target)
    decoded = tokenizer.decode(encoded.input_ids)
    assert len(encoded.input_ids) == 400 and encoded.truncated > 0
    assert "the latest words" in decoded and "turn number 11" in decoded
    assert "turn number 0 " not in decoded
    assert decoded.index("turn number 11") < decoded.index("the latest words")


def test_too_small_max_length_raises(tokenizer):
    config = tiny()
    proc = NanoEmoXProcessor(tokenizer, placeholders=config.placeholders, token_counts=config.token_counts(), max_length=50)
    with pytest.raises(ValueError, match="max_length"):
        proc.encode_text("mer", text="x")


def test_batch_padding_right_and_left(processor, tokenizer):
    samples = [dict(task="msa", text="short", target="positive"), dict(task="msa", text="a much longer subtitle " * 5, target=-1.2)]
    right = processor(samples)
    left = processor(samples, padding_side="left")
    n_short = int(right["attention_mask"][0].sum())
    assert right["input_ids"].shape == left["input_ids"].shape and right["input_ids"].dtype == torch.long
    assert right["attention_mask"][0, :n_short].all() and not right["attention_mask"][0, n_short:].any()
    assert left["attention_mask"][0, -n_short:].all() and not left["attention_mask"][0, :-n_short].any()
    assert (right["input_ids"][0, n_short:] == processor.pad_token_id).all()
    assert (right["labels"][0, n_short:] == IGNORE_INDEX).all()
    assert torch.equal(right["input_ids"][0, :n_short], left["input_ids"][0, -n_short:])
    assert right["attention_mask"][1].all()


def test_text_only_sample_has_zero_media_and_false_flags(processor):
    batch = processor([dict(task="mer", text="no media here")])
    assert batch["pixel_values"].shape == (1, 8, 3, 224, 224)
    assert batch["face_pixel_values"].shape == (1, 8, 3, 224, 224)
    assert batch["audio_values"].shape == (1, 8, 32000)
    assert not batch["video_present"].any() and not batch["audio_present"].any() and not batch["faces_found"].any()
    assert batch["pixel_values"].abs().sum() == 0 and batch["audio_values"].abs().sum() == 0


def test_media_sample_end_to_end(processor, tmp_path):
    with_audio = synth.write_video(tmp_path / "a.mp4", seconds=2.0, size=(80, 60), audio_rate=22050, audio_channels=2)
    silent = synth.write_video(tmp_path / "b.mp4", seconds=1.0, size=(161, 97), pix_fmt="yuv444p")
    batch = processor([dict(task="mer", video=with_audio, text="hi"), dict(task="mer", video=silent, text="hi")])
    assert batch["video_present"].tolist() == [True, True]
    assert batch["audio_present"].tolist() == [True, False]
    assert batch["faces_found"].all()  # face_input="frames": the frames are the face input
    assert batch["audio_values"][1].abs().sum() == 0 and batch["audio_values"][0].std() > 0.5
    assert batch["pixel_values"].dtype == torch.float32 and batch["pixel_values"][1].abs().sum() > 0


def test_from_record_uses_root_and_target_when_training(processor, tmp_path):
    (tmp_path / "clips").mkdir()
    synth.write_video(tmp_path / "clips" / "x.mp4", seconds=1.0)
    synth.write_audio(tmp_path / "x.flac", 1.0, 8000, 1)
    record = Record(id="s1", dataset="D", split="train", task="mer", media={"video": "clips/x.mp4", "audio": "x.flac", "faces": None},
                    text="hello", target="sad", candidates=["happy", "sad"])
    train = processor.from_record(record, tmp_path, train=True, rng=random.Random(0))
    evaluation = processor.from_record(record, tmp_path, train=False)
    assert "labels" in train and "labels" not in evaluation
    assert train["video_present"] and train["audio_present"]
    batch = processor.collate([train, train])
    assert batch["labels"].shape == batch["input_ids"].shape
    with pytest.raises(MediaNotFound):
        processor.from_record(record, tmp_path / "elsewhere")


def test_save_load_round_trip(tokenizer, tmp_path):
    proc = NanoEmoXProcessor.from_config(tiny(), tokenizer, face_input="crops", max_file_bytes=12345)
    proc.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "processor_config.json").is_file() and (tmp_path / "model" / "tokenizer").is_dir()
    loaded = NanoEmoXProcessor.from_pretrained(tmp_path / "model")
    assert loaded.to_dict() == proc.to_dict()
    assert loaded.media.face_input == "crops" and loaded.media.max_file_bytes == 12345
    kwargs = dict(text="some words", candidates=["a", "b"], target="a")
    assert loaded.encode_text("mer", **kwargs).input_ids == proc.encode_text("mer", **kwargs).input_ids
    with pytest.raises(FileNotFoundError, match="processor_config.json"):
        NanoEmoXProcessor.from_pretrained(tmp_path / "nothing")


def test_pickle_round_trip_for_dataloader_workers(processor, tmp_path):
    clone = pickle.loads(pickle.dumps(processor))
    video = synth.write_video(tmp_path / "c.mp4", seconds=1.0, audio_rate=16000)
    a = processor.process("mer", video=video, text="x", target="happy")
    b = clone.process("mer", video=video, text="x", target="happy")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mixed_labels_rejected(processor):
    with pytest.raises(ValueError, match="labels"):
        processor([dict(task="mer", text="a", target="happy"), dict(task="mer", text="b")])


def test_missing_placeholders_rejected():
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    bare = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), eos_token="</s>")
    with pytest.raises(ValueError, match="placeholder"):
        NanoEmoXProcessor(bare, placeholders=tiny().placeholders, token_counts=tiny().token_counts())
