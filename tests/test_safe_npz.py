"""Label archives with Python objects load as plain data; anything else is refused."""

from __future__ import annotations

import os

import numpy as np
import pytest

from nanoemox.data.safe_npz import UnsafePickleError, load_npz


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_plain_objects_and_arrays_load(tmp_path):
    path = tmp_path / "labels.npz"
    corpus = {"s1": {"emo": "happy", "val": np.float64(1.5)}, "s2": {"emo": "sad", "val": -2.0}}
    np.savez(path, test1_corpus=corpus, grid=np.arange(6, dtype=np.int32).reshape(2, 3))
    data = load_npz(path)
    assert data["test1_corpus"].tolist() == corpus
    assert data["grid"].dtype == np.int32 and data["grid"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_code_in_an_archive_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, train_corpus=np.array([_Payload()], dtype=object))
    with pytest.raises(UnsafePickleError, match="system"):
        load_npz(path)
