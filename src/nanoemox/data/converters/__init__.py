"""Dataset converters: native dataset layouts -> manifest records.

    from nanoemox.data.converters import CONVERTERS, convert
    result = convert("MER2023", "/data/mer2023", split=None)
    result.records   # list[manifest.Record], media paths relative to the root
    result.missing   # [{"id", "path", "kind"}] for media files that were not found
    result.write("mer2023.jsonl", report_path="mer2023.report.json")

Names are case-insensitive and ignore punctuation other than "+" ("ovmerd+",
"OV-MERD+", "mintrec2" all work). One module per dataset family; each exposes a
`CONVERTERS` list that this registry collects. Layouts: docs/datasets.md.
"""

from __future__ import annotations

import os
import re

from nanoemox.data.converters import alignment, avamerg, merbench, mercaption, mintrec
from nanoemox.data.converters.base import AnnotationError, ConversionResult, Converter

_FAMILIES = (alignment, mercaption, mintrec, avamerg, merbench)
CONVERTERS: dict[str, Converter] = {c.name: c for family in _FAMILIES for c in family.CONVERTERS}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9+]", "", str(name).lower())


_LOOKUP: dict[str, str] = {}
for _conv in CONVERTERS.values():
    for _alias in (_conv.name, *_conv.aliases):
        _LOOKUP[_key(_alias)] = _conv.name
        _LOOKUP[_key(_alias).rstrip("+")] = _conv.name


def resolve_name(name: str) -> str:
    """Canonical converter name for a user-given dataset name; ValueError if unknown."""
    found = _LOOKUP.get(_key(name)) or _LOOKUP.get(_key(name).rstrip("+"))
    if found is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(CONVERTERS)}")
    return found


def convert(name: str, root: str | os.PathLike, split: str | None = None) -> ConversionResult:
    """Convert dataset `name` found under `root` (optionally one split only)."""
    return CONVERTERS[resolve_name(name)](root, split=split)


__all__ = ["AnnotationError", "CONVERTERS", "ConversionResult", "Converter", "convert", "resolve_name"]
