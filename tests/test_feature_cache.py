"""Feature cache: cached loss == live loss, resume, stale and corrupt caches, bad media, the CLI."""

from __future__ import annotations

import copy
import json
import pickle
import shutil

import numpy as np
import pytest
import torch

from nanoemox.config import tiny
from nanoemox.data.manifest import Record, write_manifest
from nanoemox.features import (
    NO_MEDIA_KEY,
    CorruptCacheError,
    DamagedIndexError,
    FeatureCache,
    FeatureCacheError,
    StaleCacheError,
    build_cache,
    cache_identity,
    media_key,
    stack_features,
)
from nanoemox.features.store import INDEX_NAME, read_index
from nanoemox.media.synth import write_audio, write_video
from nanoemox.model import build_model, build_tokenizer
from nanoemox.processor import NanoEmoXProcessor


def _small_config():
    """The tiny preset with fewer frames and shorter, fewer audio clips: same code paths, faster."""
    config = tiny()
    config.scene.num_frames = 3
    config.speech.num_clips = 2
    config.speech.clip_seconds = 0.5
    return config


@pytest.fixture(scope="module")
def parts():
    config = _small_config()
    tokenizer = build_tokenizer(config)
    torch.manual_seed(0)
    model = build_model(config, pretrained=False, tokenizer=tokenizer).eval()
    return model, NanoEmoXProcessor.from_config(config, tokenizer)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Three short clips with sound, one silent clip, one audio file and one broken file."""
    root = tmp_path_factory.mktemp("media")
    (root / "clips").mkdir()
    for i, seconds in enumerate((1.0, 1.5, 0.8)):
        write_video(root / "clips" / f"c{i}.mp4", seconds=seconds, fps=8, size=(64, 48), audio_rate=16000)
    write_video(root / "clips" / "silent.mp4", seconds=1.0, fps=8, size=(48, 64))
    write_audio(root / "clips" / "voice.wav", seconds=1.2)
    (root / "clips" / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(3000))  # seeded: always the same garbage
    return root


def _record(rid: str, task: str = "mer", video: str | None = None, audio: str | None = None, target="happy") -> Record:
    return Record(
        id=rid, dataset="unit", split="train", task=task, media={"video": video, "audio": audio, "faces": None},
        text=f"line {rid}", target=target,
    )


def _records(with_broken: bool = False) -> list[Record]:
    records = [
        _record("a", video="clips/c0.mp4"),
        _record("b", task="mir", video="./clips/c0.mp4", target="thank"),  # same clip as "a", other task
        _record("c", video="clips/c1.mp4"),
        _record("d", task="eri", video="clips/silent.mp4", target="a calm voice and a steady face"),
        _record("e", audio="clips/voice.wav", target="sad"),
        _record("f", task="msa", target="positive"),  # text only
        _record("g", video="clips/c2.mp4", target="angry"),
    ]
    if with_broken:
        records.insert(3, _record("x", video="clips/broken.mp4"))
        records.insert(4, _record("y", video="clips/missing.mp4"))
    return records


def _cached_items(cache: FeatureCache) -> dict[str, dict[str, torch.Tensor]]:
    return {key: cache.get(key) for key in cache.keys()}


def _assert_same_features(folder, reference, model, processor) -> int:
    """The cache in `folder` (opened for `model`) holds exactly the keys and tensors of the one in
    `reference`; returns how many media they hold."""
    got = _cached_items(FeatureCache.open(folder, model=model, processor=processor))
    expected = _cached_items(FeatureCache.open(reference))
    assert got.keys() == expected.keys()
    for key in expected:
        for name, value in expected[key].items():
            assert torch.equal(got[key][name], value), (key, name)
    return len(expected)


def test_media_key_shares_clips_and_names_empty_media():
    a, b, c = _records()[:3]
    assert media_key(a) == media_key(b)  # "./clips/c0.mp4" is the same file as "clips/c0.mp4"
    assert media_key(a) != media_key(c)
    assert media_key(_record("z")) == NO_MEDIA_KEY
    as_audio = _record("w", audio="clips/c0.mp4")
    assert media_key(as_audio) != media_key(a)  # same file in another role is another input


def test_cached_loss_equals_live_loss(parts, root, tmp_path):
    model, processor = parts
    records = _records()
    summary = build_cache(records, root, model, processor, tmp_path / "cache", shard_size=3, batch_size=2)
    assert summary["media"] == 6 and summary["cached"] == 6 and not summary["failed"]
    assert len(summary["shards"]) == 2

    cache = FeatureCache.open(tmp_path / "cache", model=model, processor=processor)
    samples = [processor.from_record(r, root, with_target=True) for r in records]
    batch = processor.collate(samples)
    text = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    with torch.no_grad():
        live = model(**batch)
        cached = model(**text, features=stack_features([cache.get(media_key(r)) for r in records]))
    assert torch.isfinite(live.loss)
    torch.testing.assert_close(cached.loss, live.loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(cached.logits, live.logits, rtol=1e-5, atol=1e-5)
    # Flags come back exactly as the processor gave them.
    for r, sample in zip(records, samples):
        item = cache.get(media_key(r))
        for flag in ("audio_present", "video_present", "faces_found"):
            assert torch.equal(item[flag], sample[flag]), (r.id, flag)
    assert not bool(cache.get(NO_MEDIA_KEY)["video_present"])


def test_float16_store_is_close_and_castable(parts, root, tmp_path):
    model, processor = parts
    records = _records()[:3]
    build_cache(records, root, model, processor, tmp_path / "half", dtype=torch.float16)
    cache = FeatureCache.open(tmp_path / "half")
    item = cache.get(media_key(records[0]))
    assert item["scene_cls"].dtype == torch.float16
    feats = stack_features([item], dtype=torch.float32)
    live = model.encode_media(
        *(processor.from_record(records[0], root)[k].unsqueeze(0) for k in ("pixel_values", "face_pixel_values", "audio_values"))
    )
    assert feats.scene_taps.dtype == torch.float32
    torch.testing.assert_close(feats.scene_taps, live.scene_taps, rtol=2e-3, atol=2e-3)
    with pytest.raises(FeatureCacheError, match="float16"):  # resuming with another dtype is refused
        build_cache(records, root, model, processor, tmp_path / "half", dtype=torch.float32)

    loud = copy.deepcopy(model)  # face vectors beyond float16's range must not become inf silently
    with torch.no_grad():
        loud.face.encoder.linear_fuse.weight.mul_(1e8)
    with pytest.raises(FeatureCacheError, match="face_frames.*not finite"):
        build_cache(records[:1], root, loud, processor, tmp_path / "overflow", dtype=torch.float16)


def test_resume_after_interruption_matches_single_run(parts, root, tmp_path):
    model, processor = parts
    records = _records()

    def stop_after_first_batch(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cache(
            records, root, model, processor, tmp_path / "resumed", shard_size=2, batch_size=2,
            progress=stop_after_first_batch,
        )
    first = read_index(tmp_path / "resumed")
    assert list(first["shards"]) == ["shard-00000.safetensors"] and len(first["entries"]) == 2
    shard0 = tmp_path / "resumed" / "shard-00000.safetensors"
    stat_before = shard0.stat()

    summary = build_cache(records, root, model, processor, tmp_path / "resumed", shard_size=2, batch_size=2)
    assert summary["skipped"] == 2 and summary["cached"] == 4
    assert "shard-00000.safetensors" not in summary["shards"]
    stat_after = shard0.stat()
    assert (stat_after.st_ino, stat_after.st_mtime_ns) == (stat_before.st_ino, stat_before.st_mtime_ns)

    build_cache(records, root, model, processor, tmp_path / "single", shard_size=2, batch_size=2)
    assert _assert_same_features(tmp_path / "resumed", tmp_path / "single", model, processor) == 6

    again = build_cache(records, root, model, processor, tmp_path / "resumed", shard_size=2, batch_size=2)
    assert again["cached"] == 0 and again["skipped"] == 6 and again["shards"] == []


def test_stale_cache_is_refused(parts, root, tmp_path):
    model, processor = parts
    records = _records()[:2]
    build_cache(records, root, model, processor, tmp_path / "cache")

    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.speech.encoder.parameters()).view(-1)[0] += 1e-3
    with pytest.raises(StaleCacheError, match="encoders.speech") as info:
        FeatureCache.open(tmp_path / "cache", model=other)
    assert not any("scene" in d or "face" in d for d in info.value.differences)
    with pytest.raises(StaleCacheError):  # nor is it extended with features of other weights
        build_cache(records, root, other, processor, tmp_path / "cache")

    crops = NanoEmoXProcessor.from_config(_small_config(), processor.tokenizer, face_input="crops")
    with pytest.raises(StaleCacheError, match="media.face_input"):
        FeatureCache.open(tmp_path / "cache", processor=crops)
    # A change outside the encoders (the trainable Q-Former) leaves the cache valid.
    with torch.no_grad():
        next(other.scene.resampler.parameters()).view(-1)[0] += 1.0
    assert cache_identity(model, processor)["encoders"]["scene"] == cache_identity(other, processor)["encoders"]["scene"]
    FeatureCache.open(tmp_path / "cache", model=model, processor=processor)


def test_corrupted_shard_is_detected(parts, root, tmp_path):
    model, processor = parts
    records = _records()[:3]
    build_cache(records, root, model, processor, tmp_path / "cache", shard_size=1)
    shard = tmp_path / "cache" / "shard-00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF  # a flipped bit in the tensor data, the header stays valid
    shard.write_bytes(bytes(data))

    with pytest.raises(CorruptCacheError, match="shard-00001.safetensors.*checksum"):
        FeatureCache.open(tmp_path / "cache")
    lazy = FeatureCache.open(tmp_path / "cache", verify="lazy")
    lazy.get(media_key(records[0]))  # an intact shard still reads
    with pytest.raises(CorruptCacheError, match="shard-00001"):
        lazy.get(media_key(records[2]))

    # The documented repair: delete the shard and run again; only its media are re-encoded.
    shard.unlink()
    summary = build_cache(records, root, model, processor, tmp_path / "cache", shard_size=1)
    assert summary["cached"] == 1 and summary["skipped"] == 1
    FeatureCache.open(tmp_path / "cache")


def test_bad_media_is_reported_and_others_cached(parts, root, tmp_path):
    model, processor = parts
    records = _records(with_broken=True)
    summary = build_cache(records, root, model, processor, tmp_path / "cache", shard_size=2, batch_size=3)
    broken, missing = media_key(records[3]), media_key(records[4])
    assert set(summary["failed"]) == {broken, missing}
    assert "broken.mp4" in summary["failed"][broken] and "missing.mp4" in summary["failed"][missing]
    assert summary["failed_records"][broken] == ["x"]
    assert summary["cached"] == 6

    cache = FeatureCache.open(tmp_path / "cache")
    assert broken not in cache and cache.error(broken) == summary["failed"][broken]
    assert len(cache) == 6 and cache.error(media_key(records[0])) is None
    with pytest.raises(KeyError, match="failed when the cache was built"):
        cache.get(broken)

    (root / "clips" / "missing.mp4").write_bytes((root / "clips" / "c2.mp4").read_bytes())
    try:  # the file appears: the next run retries failures and clears the error
        again = build_cache(records, root, model, processor, tmp_path / "cache", shard_size=2, batch_size=3)
    finally:
        (root / "clips" / "missing.mp4").unlink()
    assert again["cached"] == 1 and list(again["failed"]) == [broken]
    reopened = FeatureCache.open(tmp_path / "cache")
    assert missing in reopened and reopened.error(missing) is None


def test_cache_pickles_for_dataloader_workers(parts, root, tmp_path):
    model, processor = parts
    records = _records()[:3]
    build_cache(records, root, model, processor, tmp_path / "cache")
    cache = FeatureCache.open(tmp_path / "cache", verify="lazy")
    key = media_key(records[2])
    before = cache.get(key)
    copy_ = pickle.loads(pickle.dumps(cache))
    assert torch.equal(copy_.get(key)["speech_taps"], before["speech_taps"])


def test_cli_with_workers_matches_library(parts, root, tmp_path, capsys):
    from nanoemox.cli import main

    model, processor = parts
    model_dir = model.save_pretrained(tmp_path / "model", self_contained=True, processor=processor)
    records = _records(with_broken=True)
    write_manifest(root / "unit.jsonl", records)
    out = tmp_path / "cli-cache"
    args = ["cache-features", str(root / "unit.jsonl"), "--model", str(model_dir), "--out", str(out),
            "--workers", "2", "--batch-size", "3", "--shard-size", "4", "--device", "cpu"]
    assert main(args) == 1  # two media failed
    printed = capsys.readouterr().out
    assert "cached 6" in printed and "failed 2" in printed and "broken.mp4" in printed

    build_cache(records, root, model, processor, tmp_path / "lib", batch_size=2)
    from_cli, from_lib = _cached_items(FeatureCache.open(out)), _cached_items(FeatureCache.open(tmp_path / "lib"))
    assert from_cli.keys() == from_lib.keys()
    for key in from_lib:
        torch.testing.assert_close(from_cli[key], from_lib[key])

    assert main(args) == 1
    assert "skipped 6" in capsys.readouterr().out
    index = json.loads((out / INDEX_NAME).read_text())
    assert index["identity"] == json.loads((tmp_path / "lib" / INDEX_NAME).read_text())["identity"]
    shutil.rmtree(out)


@pytest.mark.parametrize("decode", ["generate", "score"])
def test_answers_from_the_cache_equal_answers_from_media(parts, root, tmp_path, decode):
    """The feature-cache source answers every record as the media source does (shared clips, errors, text only)."""
    from nanoemox.inference import FeatureCacheSource, Predictor

    model, processor = parts
    model = copy.deepcopy(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.language.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.5)  # varied answers, so that equality means something
    records = _records(with_broken=True)
    build_cache(records, root, model, processor, tmp_path / "cache", batch_size=2)
    cache = FeatureCache.open(tmp_path / "cache", model=model, processor=processor)
    options = {"device": "cpu", "dtype": torch.float32, "batch_size": 4, "max_new_tokens": 6}
    live = list(Predictor(model, processor, **options).predict_records(records, root, decode=decode))
    cached = list(Predictor(model, processor, source=FeatureCacheSource(cache), **options)
                  .predict_records(records, root, decode=decode))
    assert [p.record.id for p in cached] == [r.id for r in records]
    for a, b in zip(live, cached):
        assert (a.error is None) == (b.error is None), (a.record.id, a.error, b.error)
        assert a.text == b.text and a.flags == b.flags and a.truncated == b.truncated, a.record.id
        if a.scores is not None:
            assert b.scores == pytest.approx(a.scores, abs=1e-5)
    answered = [p for p in live if p.error is None]
    assert len(answered) == 7 and len({p.text for p in answered}) > 1  # varied answers, two failed records
    if decode == "score":
        assert sum(p.scores is not None for p in answered) == 6  # all but ERI ranked over candidates


# ---------------------------------------------------------------------- a damaged index is rebuilt from the shards


def _count_encoded(monkeypatch, model) -> list[int]:
    """Wrap the model's encode_media: the returned list collects the batch size of every call."""
    calls: list[int] = []
    encode = model.encode_media

    def counting(pixel_values, *args, **kwargs):
        calls.append(int(pixel_values.shape[0]))
        return encode(pixel_values, *args, **kwargs)

    monkeypatch.setattr(model, "encode_media", counting)
    return calls


def _stats(folder) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.glob("shard-*.safetensors"))}


def _index_damages():
    def truncate(path):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    def garbage(path):
        path.write_bytes(np.random.default_rng(1).bytes(500))

    def edit(change):
        def damage(path):
            index = json.loads(path.read_text())
            change(index)
            path.write_text(json.dumps(index))
        return damage

    def beyond(index):
        key = next(iter(index["entries"]))
        index["entries"][key][1] = 99

    return {
        "truncated": (truncate, "unreadable index"),
        "garbage": (garbage, "unreadable index"),
        "a list": (lambda path: path.write_text("[1, 2]"), "holds a list, not an object"),
        "no entries": (edit(lambda index: index.pop("entries")), "missing ['entries']"),
        "entries not an object": (edit(lambda index: index.update(entries=[1])), "'entries' is a list"),
        "row beyond the shard": (edit(beyond), "points to row 99"),
    }


@pytest.mark.parametrize("damage", list(_index_damages()))
def test_damaged_index_is_rebuilt_from_the_shards(parts, root, tmp_path, monkeypatch, damage):
    model, processor = parts
    records = _records()
    build_cache(records, root, model, processor, tmp_path / "clean", shard_size=2, batch_size=2)
    build_cache(records, root, model, processor, tmp_path / "cache", shard_size=2, batch_size=2)
    index_path = tmp_path / "cache" / INDEX_NAME
    spoil, problem = _index_damages()[damage]
    spoil(index_path)
    damaged_bytes = index_path.read_bytes()
    shards_before = _stats(tmp_path / "cache")
    assert len(shards_before) == 3

    # A reader stops with one clear error naming the file and the repair.
    with pytest.raises(DamagedIndexError, match=r"index\.json: .*re-run `nanoemox cache-features`") as info:
        FeatureCache.open(tmp_path / "cache", model=model, processor=processor)
    assert problem in str(info.value)

    calls = _count_encoded(monkeypatch, model)
    summary = build_cache(records, root, model, processor, tmp_path / "cache", shard_size=2, batch_size=2)
    assert calls == [] and summary["cached"] == 0 and summary["skipped"] == 6 and summary["shards"] == []
    [report] = summary["recovered"]
    assert problem in report["problem"] and report["dropped"] == {} and report["entries"] == 6
    assert report["shards"] == sorted(shards_before)
    kept = tmp_path / "cache" / "index.json.damaged-1"
    assert report["kept_as"] == str(kept) and kept.read_bytes() == damaged_bytes
    assert _stats(tmp_path / "cache") == shards_before  # no shard rewritten

    # The rebuilt index is the one a clean build writes, and every feature reads back the same.
    assert read_index(tmp_path / "cache") == read_index(tmp_path / "clean")
    assert _assert_same_features(tmp_path / "cache", tmp_path / "clean", model, processor) == 6

    again = build_cache(records, root, model, processor, tmp_path / "cache", shard_size=2, batch_size=2)
    assert again["recovered"] == [] and again["skipped"] == 6 and calls == []


def test_damaged_shards_are_set_aside_and_their_media_encoded_again(parts, root, tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    model, processor = parts
    records = _records()
    build_cache(records, root, model, processor, tmp_path / "clean", shard_size=2, batch_size=2)
    folder = tmp_path / "cache"
    build_cache(records, root, model, processor, folder, shard_size=2, batch_size=2)
    index = read_index(folder)
    held = {name: [k for k, (s, _) in index["entries"].items() if s == name] for name in index["shards"]}
    (folder / INDEX_NAME).write_text('{"format_version": 1, "identity": {"ver')  # cut short
    intact = folder / "shard-00000.safetensors"
    intact_stat = intact.stat()
    cut = folder / "shard-00001.safetensors"
    cut.write_bytes(cut.read_bytes()[:-100])  # truncated
    old = folder / "shard-00002.safetensors"  # as shards were written before they described themselves
    save_file(load_file(old), old, metadata={"format": "pt"})
    flipped = tmp_path / "flipped.safetensors"  # same header, one altered value: only a checksum can tell
    data = bytearray(intact.read_bytes())
    data[-5] ^= 0xFF
    flipped.write_bytes(bytes(data))

    calls = _count_encoded(monkeypatch, model)
    summary = build_cache(records, root, model, processor, folder, shard_size=2, batch_size=2)
    [report] = summary["recovered"]
    assert report["shards"] == ["shard-00000.safetensors"] and report["entries"] == 2
    assert set(report["dropped"]) == {"shard-00001.safetensors", "shard-00002.safetensors"}
    assert "truncated" in report["dropped"]["shard-00001.safetensors"]
    assert "no record of its media keys" in report["dropped"]["shard-00002.safetensors"]
    for name, aside in report["moved"].items():  # set aside, not deleted
        assert aside == f"{name}.damaged-1" and (folder / aside).is_file()
    assert sum(calls) == 4 and summary["cached"] == 4 and summary["skipped"] == 2
    encoded_again = set(held["shard-00001.safetensors"]) | set(held["shard-00002.safetensors"])
    new_entries = read_index(folder)["entries"]
    assert {k for k, (s, _) in new_entries.items() if s != "shard-00000.safetensors"} == encoded_again
    assert (intact.stat().st_ino, intact.stat().st_mtime_ns) == (intact_stat.st_ino, intact_stat.st_mtime_ns)

    _assert_same_features(folder, tmp_path / "clean", model, processor)

    # A shard with an altered value (header intact) fails the checksums of its own record.
    from nanoemox.features.recover import ShardUnusable, read_shard_record

    with pytest.raises(ShardUnusable, match="checksum"):
        read_shard_record(flipped)


def test_missing_index_beside_shards_is_rebuilt(parts, root, tmp_path, monkeypatch):
    model, processor = parts
    records = _records()[:3]
    build_cache(records, root, model, processor, tmp_path / "cache", shard_size=1)
    expected = read_index(tmp_path / "cache")
    (tmp_path / "cache" / INDEX_NAME).unlink()
    with pytest.raises(DamagedIndexError, match="index.json: missing, but the folder holds shards"):
        FeatureCache.open(tmp_path / "cache")
    calls = _count_encoded(monkeypatch, model)
    summary = build_cache(records, root, model, processor, tmp_path / "cache", shard_size=1)
    assert calls == [] and summary["skipped"] == 2
    assert summary["recovered"][0]["kept_as"] is None and summary["recovered"][0]["entries"] == 2
    assert read_index(tmp_path / "cache") == {**expected, "shard_size": 1}


def test_rebuild_refuses_shards_of_other_settings(parts, root, tmp_path):
    model, processor = parts
    records = _records()[:3]
    folder = tmp_path / "cache"
    build_cache(records, root, model, processor, folder, shard_size=1)
    (folder / INDEX_NAME).write_text("{garbled")
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.speech.encoder.parameters()).view(-1)[0] += 1e-3
    # The identity lived in the damaged index, but every shard carries it too.
    with pytest.raises(StaleCacheError, match=r"shard-00000\.safetensors: .*encoders\.speech"):
        build_cache(records, root, other, processor, folder, shard_size=1)
    crops = NanoEmoXProcessor.from_config(_small_config(), processor.tokenizer, face_input="crops")
    with pytest.raises(StaleCacheError, match="media.face_input"):
        build_cache(records, root, model, crops, folder, shard_size=1)
    with pytest.raises(FeatureCacheError, match="stores float32 features.*float16"):
        build_cache(records, root, model, processor, folder, shard_size=1, dtype=torch.float16)
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert after == before  # refused before anything was changed

    summary = build_cache(records, root, model, processor, folder, shard_size=1)
    assert summary["recovered"][0]["entries"] == 2 and summary["cached"] == 0


def test_damaged_index_of_an_unfinished_part_is_rebuilt(parts, root, tmp_path, monkeypatch):
    """A part folder left by an interrupted run of several processes is repaired when folded in."""
    model, processor = parts
    records = _records()
    part = tmp_path / "cache" / ".part-1-of-2"
    build_cache(records[:3], root, model, processor, part, shard_size=1)
    (part / INDEX_NAME).write_bytes(b"\x00" * 40)
    calls = _count_encoded(monkeypatch, model)
    summary = build_cache(records, root, model, processor, tmp_path / "cache", shard_size=2, batch_size=2)
    assert sum(calls) == 4 and summary["cached"] == 4 and summary["skipped"] == 2
    assert [r["index"] for r in summary["recovered"]] == [str(part / INDEX_NAME)]
    assert not part.exists() and len(FeatureCache.open(tmp_path / "cache", model=model, processor=processor)) == 6
