"""Fuzzing the file loaders: whatever the bytes, only DataError (a ValueError) escapes.

Each example is a valid CSV, TSV, Parquet, NPY or NPZ file mutated by hypothesis
(truncated, bytes overwritten, bytes inserted) or plain random bytes; every reader of
linlab.data must load it or raise the documented DataError.
"""

import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linlab.data import DataError, file_stats, iter_chunks, load_features, load_file

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TABLE = np.array([[1.0, -2.5, 3.0], [4.0, 5.0, -6.25], [7.5, 8.0, 9.0]])


def _csv(sep: str) -> bytes:
    lines = [sep.join(["a", "b", "y"])] + [sep.join(f"{v:g}" for v in row) for row in TABLE]
    return ("\n".join(lines) + "\n").encode()


def _npy() -> bytes:
    out = io.BytesIO()
    np.save(out, TABLE)
    return out.getvalue()


def _npz() -> bytes:
    out = io.BytesIO()
    np.savez(out, X=TABLE[:, :2], Y=TABLE[:, 2:])
    return out.getvalue()


def _parquet() -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({name: TABLE[:, j] for j, name in enumerate("aby")}), out, row_group_size=2)
    return out.getvalue()


VALID = {".csv": _csv(","), ".tsv": _csv("\t"), ".npy": _npy(), ".npz": _npz(), ".parquet": _parquet()}


@st.composite
def mutated(draw, content: bytes):
    """`content` truncated, overwritten and/or with bytes inserted at drawn positions."""
    data = bytearray(content)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "overwrite", "insert"]))
        at = draw(st.integers(0, len(data)))
        if kind == "truncate":
            del data[at:]
        elif kind == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(patch)] = patch
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@st.composite
def files(draw):
    suffix = draw(st.sampled_from(sorted(VALID)))
    content = draw(st.one_of(mutated(VALID[suffix]), st.binary(max_size=200)))
    return suffix, content


def read_every_way(path: Path) -> None:
    for read in (lambda: load_file(path), lambda: load_file(path, standardize=True),
                 lambda: load_features(path), lambda: list(iter_chunks(path, chunk_rows=2)),
                 lambda: file_stats(path, chunk_rows=2)):
        try:
            read()
        except DataError as err:
            assert str(err) and isinstance(err, ValueError)


def test_the_unmutated_files_load():
    with tempfile.TemporaryDirectory() as folder:
        for suffix, content in VALID.items():
            path = Path(folder) / f"data{suffix}"
            path.write_bytes(content)
            np.testing.assert_array_equal(load_file(path).Y.ravel(), TABLE[:, 2])


@FUZZ
@given(files())
def test_only_data_errors_escape_the_loaders(file):
    suffix, content = file
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. standardizing a constant column may warn
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(content)
        read_every_way(path)
