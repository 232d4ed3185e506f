"""Nano-EmoX demo: SynthAffect, tiny backbone pre-training, P2E, evaluation and report."""
