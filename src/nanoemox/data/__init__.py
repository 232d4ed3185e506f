"""Data: the manifest format, dataset converters, the P2E task mixture and the SynthAffect corpus."""
