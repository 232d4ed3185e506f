"""Errors of the feature cache: a cache built for other encoders or settings, or a damaged one."""

from __future__ import annotations

from nanoemox.media.errors import FileProblem


class FeatureCacheError(Exception):
    """Base class of every feature-cache problem."""


class StaleCacheError(FeatureCacheError):
    """The cache was built with other encoder weights, encoder settings or media settings.

    `differences` lists what differs, one readable line per setting.
    """

    def __init__(self, path: str, differences: list[str]):
        self.path = str(path)
        self.differences = list(differences)
        shown = "; ".join(differences[:12]) + ("; ..." if len(differences) > 12 else "")
        super().__init__(
            f"{self.path}: the feature cache does not match this model/processor ({shown}); "
            "its features would be wrong for this model: build a new cache with `nanoemox cache-features` "
            "into another folder, or delete this one"
        )

    def __reduce__(self):
        return (type(self), (self.path, self.differences))


class CorruptCacheError(FeatureCacheError, FileProblem):
    """A shard (or, as DamagedIndexError, the index) is missing, truncated or fails its checksum."""

    advice = (
        "delete this file and re-run `nanoemox cache-features` with the same arguments: "
        "the media it held are encoded again, everything else is kept"
    )



class DamagedIndexError(CorruptCacheError):
    """`index.json` cannot be read or does not have the structure of a feature-cache index.

    Readers stop here; `nanoemox cache-features` (re-run with the same arguments) rebuilds
    the index from the intact shards instead, see `nanoemox.features.recover`.
    """

    advice = (
        "re-run `nanoemox cache-features` with the same manifest, --model and --out to repair it: "
        "the index is rebuilt from the intact shards and only the missing media are encoded again"
    )
