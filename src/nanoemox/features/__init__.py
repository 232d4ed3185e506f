"""Frozen-encoder feature cache: encode each clip once, train from the stored features.

`build_cache` writes a sharded, checksummed, resumable store of the CLIP, HuBERT
and FaceXFormer outputs (`MediaFeatures`) of every unique media item of a manifest;
`FeatureCache.open` reads it back lazily and refuses a cache made with other encoder
weights or preprocessing settings; `stack_features` batches cached items for the model.
A re-run of `build_cache` rebuilds a damaged index from the intact shards (`recover`).
"""

from nanoemox.features.build import build_cache, unique_media
from nanoemox.features.errors import CorruptCacheError, DamagedIndexError, FeatureCacheError, StaleCacheError
from nanoemox.features.identity import NO_MEDIA_KEY, cache_identity, media_key, weights_digest
from nanoemox.features.store import DTYPES, FeatureCache, stack_features

__all__ = [
    "DTYPES",
    "NO_MEDIA_KEY",
    "CorruptCacheError",
    "DamagedIndexError",
    "FeatureCache",
    "FeatureCacheError",
    "StaleCacheError",
    "build_cache",
    "cache_identity",
    "media_key",
    "stack_features",
    "unique_media",
    "weights_digest",
]
