"""Query results as columns: numpy arrays per field, without a Python dict and a vector slice per row.

A candidate fetch returns thousands of frame rows (~150 videos × 30 frames). pymilvus 3.0 builds one dict per
row and, on first access, cuts each row's vector out of the result one cell at a time; the searcher then stacked
those slices back into matrices. Here the float-vector fields of a result are reshaped in one step from the
result's own field data ([N·D] -> [N, D]), and the scalar fields, which pymilvus has already read into its row
dicts, are gathered per field. ``tests/test_columns.py`` holds this bit-identical to the public row path on
Milvus Lite and on a Milvus server.

It reads ``HybridExtraList._lazy_field_data``, an attribute of the pinned pymilvus 3.0.x (pyproject.toml); a
result that lacks it (another pymilvus) is read through the public row path instead, with the same output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_VECTOR = 101  # schema_pb2.DataType.FloatVector


def result_columns(result: Any, fields: list[str]) -> dict[str, np.ndarray]:
    """``{field: array}`` of a pymilvus ``query`` result (``strict_float32=True``): vectors [N, D] float32,
    strings as object arrays, numbers as their numpy type."""
    n = len(result)
    vectors = _vector_columns(result)
    if vectors is None:  # not the pymilvus this was written against: the public path, row by row
        rows = list(result)
        return {f: _column([r[f] for r in rows], n) for f in fields}
    out = {}
    for f in fields:
        out[f] = vectors[f] if f in vectors else _column([list.__getitem__(result, i)[f] for i in range(n)], n)
    return out


def _vector_columns(result: Any) -> dict[str, np.ndarray] | None:
    lazy = getattr(result, "_lazy_field_data", None)
    if lazy is None or not isinstance(result, list):
        return None
    out = {}
    for fd in lazy:
        if fd.type != FLOAT_VECTOR:
            continue
        if len(fd.valid_data):  # nullable vectors are stored sparsely: leave them to the row path
            return None
        dim = int(fd.vectors.dim)
        flat = np.array(fd.vectors.float_vector.data, dtype=np.float32)  # [N·D]
        out[fd.field_name] = flat.reshape(-1, dim) if dim else flat.reshape(len(result), 0)  # [N, D]
    return out


def _column(values: list, n: int) -> np.ndarray:
    if n and isinstance(values[0], str):
        return np.array(values, dtype=object)
    if n and isinstance(values[0], np.ndarray):
        return np.stack(values).astype(np.float32, copy=False)
    return np.asarray(values)
