"""Reading `.npz` label files that hold Python objects, without running pickled code.

The MER-UniBench label files store dicts inside object arrays, which numpy can only
read with `allow_pickle=True` — that would execute whatever a tampered file asks for.
`load_npz` unpickles object arrays through an unpickler that resolves only the few
names such arrays need (plain containers, numbers, strings, numpy arrays, dtypes and
scalars) and refuses everything else.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

_ALLOWED = {
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "str"), ("builtins", "bytes"), ("builtins", "int"),
    ("builtins", "float"), ("builtins", "complex"), ("builtins", "bool"), ("builtins", "slice"),
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks to build an object that plain data never needs."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module == "numpy" and name.startswith(("float", "int", "uint", "bool", "str"))):
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to load {module}.{name}: not plain data")


def _read_member(raw: bytes) -> np.ndarray:
    fh = io.BytesIO(raw)
    version = npy_format.read_magic(fh)
    read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    shape, fortran, dtype = read_header(fh)  # header only, no data yet
    if dtype.hasobject:
        return _RestrictedUnpickler(fh, encoding="latin1").load()
    data = np.frombuffer(fh.read(), dtype=dtype)
    return data.reshape(shape, order="F" if fortran else "C")


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an npz archive by name; object arrays go through the restricted unpickler."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                out[member[: -len(".npy")]] = _read_member(archive.read(member))
    return out
