"""Short audio: padding is masked in HuBERT and left out of the time averages."""

from __future__ import annotations

import torch

from nanoemox.model.speech import SpeechBranch, build_speech_encoder, real_lengths


def _branch(tiny_config):
    torch.manual_seed(0)
    encoder = build_speech_encoder(tiny_config.speech, pretrained=False).eval()
    assert encoder.config.feat_extract_norm == "layer"  # as HuBERT-Large
    return SpeechBranch(tiny_config.speech, encoder, lm_width=32, tap_layers=tiny_config.fusion.speech_layers).eval()


def test_short_clip_gives_the_same_vectors_padded_or_not(tiny_config):
    branch = _branch(tiny_config)
    rate, clip = tiny_config.speech.sample_rate, int(tiny_config.speech.sample_rate * tiny_config.speech.clip_seconds)
    g = torch.Generator().manual_seed(1)
    real = torch.randn(int(0.6 * rate), generator=g)
    real = (real - real.mean()) / real.std()
    padded = torch.zeros(1, 1, clip)
    padded[0, 0, : real.numel()] = real
    with torch.no_grad():
        vec_padded, taps_padded = branch.encode(padded)
        vec_alone, taps_alone = branch.encode(real[None, None])
        # What the old code computed: every frame, padding included, in the average.
        hidden = branch.encoder(input_values=padded[0], output_hidden_states=True).hidden_states
        old = torch.stack(hidden[-tiny_config.speech.pool_last_layers:]).mean(0).mean(1)
    assert torch.allclose(vec_padded, vec_alone, atol=1e-5, rtol=1e-4)
    assert torch.allclose(taps_padded, taps_alone, atol=1e-5, rtol=1e-4)
    assert (old - vec_alone[0]).abs().max() > 1e-3  # the padding used to shift the clip vector


def test_full_clips_and_silence_are_unchanged(tiny_config):
    branch = _branch(tiny_config)
    clip = int(tiny_config.speech.sample_rate * tiny_config.speech.clip_seconds)
    full = torch.randn(2, 3, clip, generator=torch.Generator().manual_seed(2))
    full[1, 2] = 0.0  # a clip of no audio (absent audio stream) is read in full, as before
    assert real_lengths(full.flatten(0, 1)).tolist() == [clip] * 6
    with torch.no_grad():
        vectors, _ = branch.encode(full)
        hidden = branch.encoder(input_values=full.flatten(0, 1), output_hidden_states=True).hidden_states
        plain = torch.stack(hidden[-tiny_config.speech.pool_last_layers:]).mean(0).mean(1)
    assert torch.allclose(vectors.flatten(0, 1), plain, atol=1e-5, rtol=1e-4)
