"""Model invariants on the tiny preset: shapes, placeholder checks, loss masking, save/load,
KV-cache parity, parameter groups and ablation switches."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import make_media, make_prompt
from nanoemox.config import paper, tiny
from nanoemox.model import GROUPS, NanoEmoX, build_model, parameter_groups, set_trainable
from nanoemox.model.groups import SAVED_GROUPS, count_parameters


def _batch(config, tokenizer, answers=("happy", "sad"), seed=0):
    prompts = [make_prompt(config, answer=a) for a in answers]
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    labels = enc["input_ids"].clone()
    for i, answer in enumerate(answers):
        n_answer = len(tokenizer(answer)["input_ids"])
        n_real = int(enc["attention_mask"][i].sum())
        labels[i, : n_real - n_answer] = -100
        labels[i, n_real:] = -100
    return {**enc, "labels": labels, **make_media(config, len(answers), seed)}


def test_branch_output_shapes(tiny_model, tiny_config):
    media = make_media(tiny_config, batch=3)
    feats = tiny_model.encode_media(**media)
    d_v = tiny_config.scene.encoder_config["hidden_size"]
    d_a = tiny_config.speech.encoder_config["hidden_size"]
    assert feats.scene_cls.shape == (3, 8, d_v)
    assert feats.scene_taps.shape == (3, 3, 8, d_v)
    assert feats.speech_clips.shape == (3, 8, d_a)
    assert feats.speech_taps.shape == (3, 3, 8, d_a)
    assert feats.face_frames.shape == (3, 8, tiny_config.face.feature_dim)
    tokens = tiny_model.modality_tokens(feats)
    width = tiny_model.language.config.hidden_size
    assert {m: tuple(t.shape) for m, t in tokens.items()} == {
        "fusion": (3, 1, width), "speech": (3, 32, width), "face": (3, 4, width), "scene": (3, 32, width)
    }
    _, gates = tiny_model.fusion(feats.speech_taps, feats.scene_taps)
    assert gates.shape == (3, 3)
    torch.testing.assert_close(gates.sum(-1), torch.ones(3))


def test_placeholder_count_mismatch_raises(tiny_model, tiny_config, tiny_tokenizer):
    batch = _batch(tiny_config, tiny_tokenizer)
    ids = batch["input_ids"].clone()
    scene_id = tiny_model.placeholder_ids["scene"]
    first = int((ids[0] == scene_id).nonzero()[0])
    ids[0, first] = tiny_tokenizer.convert_tokens_to_ids("a")  # one scene placeholder fewer in sample 0
    with pytest.raises(ValueError, match="scene placeholders do not match"):
        tiny_model(input_ids=ids, attention_mask=batch["attention_mask"], **make_media(tiny_config))


def test_loss_only_on_answer_tokens(tiny_model, tiny_config, tiny_tokenizer):
    batch = _batch(tiny_config, tiny_tokenizer)
    with torch.no_grad():
        out = tiny_model(**batch)
        # Reference: cross-entropy over the supervised positions only, computed by hand.
        shift_logits = out.logits[:, :-1]
        shift_labels = batch["labels"][:, 1:]
        keep = shift_labels != -100
        manual = torch.nn.functional.cross_entropy(shift_logits[keep], shift_labels[keep])
    torch.testing.assert_close(out.loss, manual)
    # Supervising the prompt instead changes the loss, so the masking above is what mattered.
    full = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        loss_all = tiny_model(**{**batch, "labels": full}).loss
    assert not torch.isclose(loss_all, out.loss)
    # Placeholder positions are never targets, even when labels name them.
    with torch.no_grad():
        loss_ph = tiny_model(**{**batch, "labels": torch.where(
            torch.isin(batch["input_ids"], torch.tensor(list(tiny_model.placeholder_ids.values()))),
            batch["input_ids"], batch["labels"])}).loss
    torch.testing.assert_close(loss_ph, out.loss)


def test_kv_cache_generation_equals_no_cache(tiny_model, tiny_config, tiny_tokenizer):
    tiny_tokenizer.padding_side = "left"
    try:
        prompts = [make_prompt(tiny_config), make_prompt(tiny_config, text=" a much longer subtitle for padding")]
        enc = tiny_tokenizer(prompts, return_tensors="pt", padding=True)
    finally:
        tiny_tokenizer.padding_side = "right"
    media = make_media(tiny_config)
    # Make greedy decoding non-trivial: scale the head so tokens vary.
    with torch.no_grad():
        for p in tiny_model.language.parameters():
            p.mul_(3.0)
    cached = tiny_model.generate(**enc, **media, max_new_tokens=12, use_cache=True, eos_token_id=-1)
    plain = tiny_model.generate(**enc, **media, max_new_tokens=12, use_cache=False, eos_token_id=-1)
    assert cached.shape == (2, 12)
    assert torch.equal(cached, plain)
    assert len(set(cached.flatten().tolist())) > 1
    assert not torch.isin(cached, torch.tensor(list(tiny_model.placeholder_ids.values()))).any()


def test_save_load_round_trip(tmp_path, tiny_model, tiny_config, tiny_tokenizer):
    set_trainable(tiny_model, SAVED_GROUPS)
    with torch.no_grad():  # move the trainable weights away from their initial values
        for name, p in tiny_model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    batch = _batch(tiny_config, tiny_tokenizer)
    with torch.no_grad():
        before = tiny_model(**batch).logits
    folder = tiny_model.save_pretrained(tmp_path / "model", tokenizer=tiny_tokenizer)
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    # Random backbones have no reference, so they are written into the folder.
    for sub in ("scene_encoder", "speech_encoder", "face_encoder", "language"):
        assert (folder / sub).is_dir()
    loaded = NanoEmoX.from_pretrained(folder)
    with torch.no_grad():
        after = loaded(**batch).logits
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_saved_weights_hold_only_trainable_groups(tmp_path, tiny_model, tiny_tokenizer):
    from safetensors.torch import load_file

    folder = tiny_model.save_pretrained(tmp_path / "m", tokenizer=tiny_tokenizer)
    keys = set(load_file(folder / "model.safetensors"))
    groups = parameter_groups(tiny_model)
    expected = {n for g in SAVED_GROUPS for n, _ in groups[g]}
    assert keys == expected
    assert any("lora_" in k for k in keys)


def test_load_rejects_mismatched_weights(tmp_path, tiny_model, tiny_tokenizer):
    from safetensors.torch import load_file, save_file

    folder = tiny_model.save_pretrained(tmp_path / "m", tokenizer=tiny_tokenizer)
    weights = load_file(folder / "model.safetensors")
    weights.pop(next(iter(weights)))
    weights["unknown.weight"] = torch.zeros(1)
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ValueError, match="missing .* unexpected"):
        NanoEmoX.from_pretrained(folder)


def test_backbones_load_from_local_folders(tmp_path, tiny_config, tiny_tokenizer):
    """Backbones referenced by path go through from_pretrained; the folder then stores only adapters."""
    torch.manual_seed(1)
    source = build_model(tiny_config, pretrained=False, tokenizer=tiny_tokenizer)
    source.scene.encoder.save_pretrained(tmp_path / "clip")
    source.speech.encoder.save_pretrained(tmp_path / "hubert")
    source.face.encoder.save_pretrained(tmp_path / "face")
    from nanoemox.model.language import base_state_dict

    source.language.save_pretrained(tmp_path / "lm", state_dict=base_state_dict(source.language))
    tiny_tokenizer.save_pretrained(tmp_path / "lm")
    config = copy.deepcopy(tiny_config)
    config.scene.encoder = str(tmp_path / "clip")
    config.speech.encoder = str(tmp_path / "hubert")
    config.face.encoder = str(tmp_path / "face")
    config.language.model = str(tmp_path / "lm")
    from nanoemox.model import build_tokenizer

    tok = build_tokenizer(config)
    model = build_model(config, pretrained=True, tokenizer=tok)
    for name in ("scene", "speech", "face"):
        ref = getattr(source, name).encoder.state_dict()
        for key, value in getattr(model, name).encoder.state_dict().items():
            assert torch.equal(value, ref[key]), (name, key)
    ref_lm = base_state_dict(source.language)
    for key, value in base_state_dict(model.language).items():
        assert torch.equal(value, ref_lm[key]), key
    folder = model.save_pretrained(tmp_path / "model", tokenizer=tok)
    assert not (folder / "scene_encoder").exists()  # referenced, not copied
    contained = model.save_pretrained(tmp_path / "contained", tokenizer=tok, self_contained=True)
    assert (contained / "scene_encoder").is_dir() and (contained / "language").is_dir()
    batch = _batch(config, tok)
    model.eval()
    with torch.no_grad():
        a = model(**batch).logits
        b = NanoEmoX.from_pretrained(folder)(**batch).logits
        c = NanoEmoX.from_pretrained(contained)(**batch).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_trainable_groups_partition_parameters(tiny_model):
    groups = parameter_groups(tiny_model)
    names = [n for params in groups.values() for n, _ in params]
    assert len(names) == len(set(names)) == len(list(tiny_model.named_parameters()))
    assert all(groups[g] for g in GROUPS)
    counts = count_parameters(tiny_model)
    assert sum(counts.values()) == sum(p.numel() for p in tiny_model.parameters())
    # Phase 1 (visual + face): only those adapters train.
    trained = set_trainable(tiny_model, ["scene_adapter", "face_adapter"])
    assert trained["scene_adapter"] == counts["scene_adapter"] and trained["face_adapter"] == counts["face_adapter"]
    actual = sum(p.numel() for p in tiny_model.parameters() if p.requires_grad)
    assert actual == counts["scene_adapter"] + counts["face_adapter"]
    assert all(not p.requires_grad for n, p in groups["encoders"] + groups["language"] + groups["lora"])
    # Phase 3: fusion + adapters + LoRA.
    set_trainable(tiny_model, ["scene_adapter", "speech_adapter", "face_adapter", "fusion", "lora"])
    lora = {n for n, p in tiny_model.named_parameters() if p.requires_grad and "lora_" in n}
    assert lora == {n for n, _ in groups["lora"]}
    with pytest.raises(ValueError, match="unknown parameter group"):
        set_trainable(tiny_model, ["adapters"])


def test_frozen_encoders_get_no_gradient_and_stay_in_eval(tiny_model, tiny_config, tiny_tokenizer):
    set_trainable(tiny_model, ["scene_adapter", "speech_adapter", "face_adapter", "fusion", "lora"])
    tiny_model.train()
    assert not tiny_model.speech.encoder.training and not tiny_model.scene.encoder.training
    assert tiny_model.fusion.training
    loss = tiny_model(**_batch(tiny_config, tiny_tokenizer)).loss
    loss.backward()
    assert all(p.grad is None for p in tiny_model.scene.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_model.scene.resampler.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_model.fusion.parameters())


def test_loss_only_projects_answer_positions_and_matches_full_logits(tiny_model, tiny_config, tiny_tokenizer):
    """The training loss (`loss_only=True`) equals `sequence_loss` on the full logits, with and
    without gradients, and returns no logits."""
    from nanoemox.train.optim import sequence_loss

    batch = _batch(tiny_config, tiny_tokenizer, answers=("happy", "very sad indeed"))
    with torch.no_grad():
        full = sequence_loss(tiny_model(**batch).logits, batch["labels"])
        fast = tiny_model(**batch, loss_only=True)
    assert fast.logits is None
    torch.testing.assert_close(fast.loss, full)
    # Per-sample mean: a sample's weight does not depend on its answer length.
    per_sample = []
    for i in range(2):
        one = {k: v[i : i + 1] for k, v in batch.items()}
        with torch.no_grad():
            per_sample.append(tiny_model(**one, loss_only=True).loss)
    torch.testing.assert_close(fast.loss, torch.stack(per_sample).mean(), rtol=1e-4, atol=1e-5)
    # Same gradients as the full-logit loss.
    flags = {name: p.requires_grad for name, p in tiny_model.named_parameters()}
    set_trainable(tiny_model, ["scene_adapter"])
    try:
        grads = []
        for loss_fn in (lambda: sequence_loss(tiny_model(**batch).logits, batch["labels"]),
                        lambda: tiny_model(**batch, loss_only=True).loss):
            tiny_model.zero_grad(set_to_none=True)
            loss_fn().backward()
            grads.append(torch.cat([p.grad.flatten() for p in tiny_model.scene.resampler.parameters() if p.grad is not None]))
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    finally:
        tiny_model.zero_grad(set_to_none=True)
        for name, p in tiny_model.named_parameters():
            p.requires_grad_(flags[name])
    with pytest.raises(ValueError, match="needs labels"):
        tiny_model(**{k: v for k, v in batch.items() if k != "labels"}, loss_only=True)


def test_cached_features_give_the_same_loss(tiny_model, tiny_config, tiny_tokenizer):
    batch = _batch(tiny_config, tiny_tokenizer)
    with torch.no_grad():
        live = tiny_model(**batch).loss
        feats = tiny_model.encode_media(batch["pixel_values"], batch["face_pixel_values"], batch["audio_values"])
        text = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
        cached = tiny_model(**text, features=feats).loss
    torch.testing.assert_close(live, cached)


@pytest.mark.parametrize("scene_tokens", [64, 128])
def test_scene_token_ablation(tiny_tokenizer, scene_tokens):
    config = tiny()
    config.scene.num_tokens = scene_tokens
    model = build_model(config, pretrained=False, tokenizer=tiny_tokenizer).eval()
    batch = _batch(config, tiny_tokenizer)
    assert (batch["input_ids"][0] == model.placeholder_ids["scene"]).sum() == scene_tokens
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)


def test_fusion_expert_ablation(tiny_tokenizer):
    config = tiny()
    config.fusion.speech_layers, config.fusion.visual_layers = (6,), (5,)
    model = build_model(config, pretrained=False, tokenizer=tiny_tokenizer).eval()
    assert len(model.fusion.experts) == 1
    with torch.no_grad():
        assert torch.isfinite(model(**_batch(config, tiny_tokenizer)).loss)
    with pytest.raises(ValueError, match="pair up"):
        config.fusion.speech_layers = (3, 4)
        type(config)(**{**config.__dict__})


def test_config_round_trip(tmp_path):
    config = paper()
    config.save(tmp_path / "c.json")
    assert type(config).load(tmp_path / "c.json") == config
