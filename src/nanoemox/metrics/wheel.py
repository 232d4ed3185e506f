"""Emotion-wheel lookup: map any emotion word to a level-1 cluster of one of five wheels.

MER-UniBench scores open-vocabulary emotion words by collapsing them onto the
level-1 groups of five published emotion wheels. A word reaches the wheel in three
hops, each backed by a table shipped in `nanoemox/resources/emotion_wheel/`:

1. word-form table (`format.csv`): a surface form ("scared", "fearing") -> the base
   labels that list it among their forms; every base label also maps to itself;
2. synonym table (`synonym.csv`, 8 independent runs): a base label -> the wheel words
   it is a synonym of; every wheel word also maps to itself;
3. the wheel (`wheel1.csv` .. `wheel5.csv`): among all wheel words reached in step 2,
   sorted alphabetically, the first one present anywhere in the wheel (any level)
   decides the level-1 cluster.

This is deliberately the reference procedure, quirks included, so that scores match
published tables: e.g. "fear" is a surface form of the base label "fearless" too, and
on some wheels "fearless" sorts first and lands in a positive group. A word listed in
two level-1 groups of the same wheel belongs to the group listed last.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

WHEELS = (1, 2, 3, 4, 5)
SYNONYM_RUNS = 8


def default_wheel_dir() -> Path:
    """The directory holding the shipped wheel tables."""
    return Path(str(resources.files("nanoemox").joinpath("resources", "emotion_wheel")))


def _norm(text: str) -> str:
    return text.strip().lower()


def split_list_cell(cell: str) -> list[str]:
    """Split a comma-separated table cell into normalised, non-empty items."""
    cell = cell.strip()
    if cell.startswith("[") and cell.endswith("]"):
        cell = cell[1:-1]
    items = (_norm(item).strip("'\"") for item in cell.split(","))
    return [item for item in items if item]


def _open_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(
            f"emotion-wheel table not found: {path}; reinstall nanoemox or pass a "
            "directory holding format.csv, synonym.csv and wheel1..5.csv"
        )
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _check_columns(path: Path, rows: list[dict[str, str]], needed: list[str]) -> None:
    have = set(rows[0]) if rows else set()
    missing = [c for c in needed if c not in have]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {needed}")


def read_wheel(path: Path) -> dict[str, str]:
    """Read one wheel CSV into {word at any level: its level-1 group}.

    Blank cells repeat the cell above. Groups are walked in order of first
    appearance, level 1 then its level-2 words then their level-3 words, and later
    entries overwrite earlier ones: a word under two groups ends in the last one.
    """
    rows = _open_csv(path)
    _check_columns(path, rows, ["level1", "level2", "level3"])
    tree: dict[str, dict[str, list[str]]] = {}
    current = {"level1": "", "level2": "", "level3": ""}
    for row in rows:
        for key in current:
            cell = (row.get(key) or "").strip()
            if cell:
                current[key] = _norm(cell)
        tree.setdefault(current["level1"], {}).setdefault(current["level2"], []).append(current["level3"])
    cluster: dict[str, str] = {}
    for level1, children in tree.items():
        cluster[level1] = level1
        for level2, leaves in children.items():
            cluster[level2] = level1
            for level3 in leaves:
                cluster[level3] = level1
    return cluster


def read_forms(path: Path) -> dict[str, list[str]]:
    """Read `format.csv` into {surface form or base label: [base labels]}."""
    rows = _open_csv(path)
    _check_columns(path, rows, ["name", "format"])
    form_to_bases: dict[str, list[str]] = {}
    for row in rows:
        base = _norm(row["name"])
        for form in split_list_cell(row["format"] or ""):
            form_to_bases.setdefault(form, []).append(base)
        form_to_bases.setdefault(base, []).append(base)
    return form_to_bases


def read_synonyms(path: Path, runs: int = SYNONYM_RUNS) -> dict[str, list[str]]:
    """Read `synonym.csv` into {word: [wheel words]} merged over all runs."""
    rows = _open_csv(path)
    columns = [f"{kind}_run{i}" for i in range(1, runs + 1) for kind in ("word", "synonym")]
    _check_columns(path, rows, columns)
    to_wheel: dict[str, set[str]] = {}
    for run in range(1, runs + 1):
        for row in rows:
            wheel_word = _norm(row[f"word_run{run}"] or "")
            if not wheel_word:
                continue
            to_wheel.setdefault(wheel_word, set()).add(wheel_word)
            for synonym in split_list_cell(row[f"synonym_run{run}"] or ""):
                to_wheel.setdefault(synonym, set()).add(wheel_word)
    return {word: sorted(targets) for word, targets in to_wheel.items()}


@dataclass(frozen=True)
class WheelTables:
    """All lookup tables; `clusters[w]` maps a word of wheel w to its level-1 group."""

    forms: dict[str, list[str]]
    synonyms: dict[str, list[str]]
    clusters: dict[int, dict[str, str]]

    def reachable(self, word: str) -> list[str]:
        """Wheel words a word reaches through forms then synonyms, sorted alphabetically."""
        reached: set[str] = set()
        for base in self.forms.get(_norm(word), ()):
            reached.update(self.synonyms.get(base, ()))
        return sorted(reached)

    def cluster(self, word: str, wheel: int) -> str | None:
        """Level-1 cluster of `word` on `wheel` (1..5), or None when unmapped."""
        if wheel not in self.clusters:
            raise ValueError(f"wheel must be one of {sorted(self.clusters)}, got {wheel!r}")
        table = self.clusters[wheel]
        for candidate in self.reachable(word):
            if candidate in table:
                return table[candidate]
        return None


def load_tables(directory: str | Path | None = None) -> WheelTables:
    """Load the tables from `directory` (default: the shipped copy); cached per path."""
    return _load_tables_cached(str(Path(directory) if directory else default_wheel_dir()))


@functools.lru_cache(maxsize=4)
def _load_tables_cached(directory: str) -> WheelTables:
    root = Path(directory)
    return WheelTables(
        forms=read_forms(root / "format.csv"),
        synonyms=read_synonyms(root / "synonym.csv"),
        clusters={w: read_wheel(root / f"wheel{w}.csv") for w in WHEELS},
    )


def wheel_cluster(word: str, wheel: int, tables: WheelTables | None = None) -> str | None:
    """Level-1 cluster of an emotion word on wheel 1..5; None when the word is unmapped."""
    return (tables or load_tables()).cluster(word, wheel)
