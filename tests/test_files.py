"""Users' data files: round trips per format, column choice, scaling, streaming, and every malformed input."""

import json
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from linlab.data import DataError, Scaler, delimited, file_stats, iter_chunks, load_features, load_file
from linlab.stats import Stats


def write_csv(path: Path, header, rows, delimiter=",") -> Path:
    """Numbers written with repr, so reading them back is exact in float64."""
    lines = [delimiter.join(header)] if header else []
    lines += [delimiter.join(repr(float(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_text(tmp_path: Path, text: str, name="d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def table(rng):
    """A (7, 4) float64 table with awkward values: tiny, huge, negative, integral."""
    T = rng.standard_normal((7, 4)) * np.array([1e-300, 1.0, 1e300, 3.0])
    T[0, 1] = 5.0
    return T


def write_all_formats(tmp_path: Path, T: np.ndarray) -> dict[str, Path]:
    names = ["a", "b", "c", "d"]
    paths = {
        "csv": write_csv(tmp_path / "t.csv", names, T),
        "tsv": write_csv(tmp_path / "t.tsv", names, T, delimiter="\t"),
        "parquet": tmp_path / "t.parquet",
        "npy": tmp_path / "t.npy",
        "npz": tmp_path / "t.npz",
    }
    pq.write_table(pa.table({n: T[:, j] for j, n in enumerate(names)}), paths["parquet"], row_group_size=3)
    np.save(paths["npy"], T)
    np.savez(paths["npz"], X=T[:, :3], Y=T[:, 3:])
    return paths


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "npy", "npz"])
def test_round_trip_each_format(tmp_path, table, fmt):
    path = write_all_formats(tmp_path, table)[fmt]
    ds = load_file(path)
    np.testing.assert_array_equal(ds.X, table[:, :3])
    np.testing.assert_array_equal(ds.Y, table[:, 3:])
    assert ds.X.dtype == ds.Y.dtype == np.float64
    assert ds.name == path.name
    prov = ds.provenance
    assert (prov["source"], prov["path"], prov["format"], prov["standardize"]) == ("file", str(path), fmt, False)
    expected = (["x0", "x1", "x2"], ["y0"]) if fmt == "npz" else (["a", "b", "c"], ["d"])
    if fmt == "npy":
        expected = (["col0", "col1", "col2"], ["col3"])
    assert (prov["features"], prov["targets"]) == expected
    json.dumps(prov)  # provenance is plain data


def test_tsv_by_delimiter_and_other_extensions(tmp_path, table):
    T = table[:, 1:]
    for name, delimiter in [("t.txt", "\t"), ("t.dat", "\\t"), ("t.tab", None), ("t.csv", "tab")]:
        path = write_csv(tmp_path / name, ["p", "q", "r"], T, delimiter="\t")
        ds = load_file(path, delimiter=delimiter)
        np.testing.assert_array_equal(np.hstack([ds.X, ds.Y]), T)
        assert ds.provenance["format"] == "tsv"
    semi = write_csv(tmp_path / "s.csv", ["p", "q", "r"], T, delimiter=";")
    np.testing.assert_array_equal(load_file(semi, delimiter=";").X, T[:, :2])


def test_npy_dtypes_and_order(tmp_path):
    ints = np.arange(12, dtype=np.int32).reshape(4, 3)
    np.save(tmp_path / "i.npy", ints)
    np.save(tmp_path / "f.npy", np.asfortranarray(ints.astype(np.float32) / 3))
    np.save(tmp_path / "b.npy", ints % 2 == 0)
    np.testing.assert_array_equal(load_file(tmp_path / "i.npy").Y.ravel(), [2, 5, 8, 11])
    np.testing.assert_array_equal(load_file(tmp_path / "f.npy").X, (ints.astype(np.float32) / 3)[:, :2])
    np.testing.assert_array_equal(load_file(tmp_path / "b.npy").X, (ints % 2 == 0)[:, :2])


@pytest.mark.parametrize("keys", [("X", "Y"), ("x", "y"), ("X", "y")])
def test_npz_pairs_and_1d_targets(tmp_path, rng, keys):
    X, y = rng.standard_normal((5, 2)), rng.standard_normal(5)
    np.savez(tmp_path / "p.npz", **{keys[0]: X, keys[1]: y})
    ds = load_file(tmp_path / "p.npz")
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.Y, y[:, None])
    features, names = load_features(tmp_path / "p.npz")
    np.testing.assert_array_equal(features, X)
    assert names == ["x0", "x1"]


def test_npz_single_array_reads_like_npy(tmp_path, table):
    np.savez(tmp_path / "one.npz", data=table)
    ds = load_file(tmp_path / "one.npz", targets=[0, 1])
    np.testing.assert_array_equal(ds.Y, table[:, :2])
    np.testing.assert_array_equal(ds.X, table[:, 2:])


def test_header_detection(tmp_path, table):
    T = table[:, 1:]
    bare = write_csv(tmp_path / "bare.csv", None, T)
    ds = load_file(bare)
    np.testing.assert_array_equal(ds.X, T[:, :2])
    assert ds.provenance["features"] == ["col0", "col1"]
    numeric_header = write_text(tmp_path, "1,2,3\n4,5,6\n", "nh.csv")
    assert load_file(numeric_header).n_samples == 2  # auto: a numeric first line is data
    ds = load_file(numeric_header, header=True)
    assert ds.n_samples == 1 and ds.provenance["features"] == ["1", "2"]
    with pytest.raises(DataError, match="line 1, column 'col0': the text 'a'"):
        load_file(write_text(tmp_path, "a,b\n1,2\n"), header=False)


def test_blank_lines_bom_quotes_and_crlf(tmp_path):
    path = tmp_path / "w.csv"
    path.write_bytes('\ufeff\n"a", b ,c\r\n1,"2", 3 \r\n\r\n4,5,6\r\n\n'.encode())
    ds = load_file(path)
    np.testing.assert_array_equal(ds.X, [[1, 2], [4, 5]])
    assert ds.provenance["features"] == ["a", "b"]


# ---------------------------------------------------------------- choosing columns


def test_column_selection_by_name_index_and_string(tmp_path, table):
    path = write_all_formats(tmp_path, table)["csv"]
    for features, targets in [(["c", "a"], ["b"]), ([2, 0], [1]), ("c,a", "b"), ("2, 0", "1"), ([-2, "a"], -3)]:
        ds = load_file(path, features=features, targets=targets)
        np.testing.assert_array_equal(ds.X, table[:, [2, 0]])
        np.testing.assert_array_equal(ds.Y, table[:, [1]])
        assert ds.provenance["features"] == ["c", "a"] and ds.provenance["targets"] == ["b"]
    ds = load_file(path, targets="a,b")  # features default to the rest
    assert ds.provenance["features"] == ["c", "d"]
    ds = load_file(path, features=["b"])  # target defaults to the last column
    assert ds.provenance["targets"] == ["d"]


@pytest.mark.parametrize("fmt", ["parquet", "npy", "npz"])
def test_column_selection_binary_formats(tmp_path, table, fmt):
    path = write_all_formats(tmp_path, table)[fmt]
    ds = load_file(path, features=[3, 1], targets=[0])
    np.testing.assert_array_equal(ds.X, table[:, [3, 1]])
    np.testing.assert_array_equal(ds.Y, table[:, [0]])


def test_unselected_text_columns_are_ignored(tmp_path):
    path = write_text(tmp_path, "id,city,x,y\n7,Paris,1.5,2\n8,Lyon,2.5,3\n")
    ds = load_file(path, features="x", targets="y")
    np.testing.assert_array_equal(ds.X.ravel(), [1.5, 2.5])
    with pytest.raises(DataError, match=r"line 2, column 'city': the text 'Paris'.*--features") as err:
        load_file(path)
    assert (err.value.row, err.value.column) == (2, "city")


def test_load_features_selects_training_columns(tmp_path, table):
    paths = write_all_formats(tmp_path, table)
    X, names = load_features(paths["csv"], features=["d", "b"])
    np.testing.assert_array_equal(X, table[:, [3, 1]])
    assert names == ["d", "b"]
    X, names = load_features(paths["parquet"])
    np.testing.assert_array_equal(X, table)
    assert names == ["a", "b", "c", "d"]
    only = write_csv(tmp_path / "new.csv", ["b"], table[:, 1:2])
    X, names = load_features(only)
    assert X.shape == (7, 1) and names == ["b"]
    with pytest.raises(DataError, match="no column named 'a'.*available: 'b'"):
        load_features(only, features=["a", "b"])


# ---------------------------------------------------------------- standardization


def test_standardize_and_inverse(tmp_path, table):
    T = table.copy()
    T[:, 2] = 4.25  # a constant feature
    path = write_csv(tmp_path / "s.csv", ["a", "b", "c", "d"], T)
    ds = load_file(path, standardize=True)
    np.testing.assert_allclose(ds.X[:, :2].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(ds.X[:, :2].std(0), 1, rtol=1e-12)
    np.testing.assert_array_equal(ds.X[:, 2], 0.0)
    scaler = Scaler.from_dict(json.loads(json.dumps(ds.provenance["scaler"])))
    assert scaler.x_std[2] == 1.0 and scaler.x_mean[2] == 4.25
    np.testing.assert_allclose(scaler.inverse_Y(ds.Y), T[:, 3:], rtol=1e-13)
    np.testing.assert_allclose(scaler.transform_X(T[:, :3]), ds.X, rtol=1e-13, atol=1e-15)
    assert ds.provenance["standardize"] is True


@settings(max_examples=25, deadline=None)
@given(
    X=arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 4)), elements=st.floats(-1e6, 1e6)),
    W=arrays(np.float64, (4, 2), elements=st.floats(-3, 3)),
)
def test_original_weights_match_scaled_predictions(X, W):
    W = W[: X.shape[1]]
    Y = X @ W + 1.0
    scaler = Scaler.fit(X, Y)
    W_orig, b = scaler.original_weights(W)
    direct = scaler.inverse_Y(scaler.transform_X(X) @ W)
    scale = 1 + np.abs(direct).max() + np.abs(X).max() * np.abs(W_orig).max()
    np.testing.assert_allclose(X @ W_orig + b, direct, atol=1e-9 * scale)


def test_original_weights_of_a_subnormal_column_are_finite():
    X, W = np.array([[2.22507386e-311], [0.0]]), np.ones((1, 2))
    scaler = Scaler.fit(X, X @ W + 1.0)
    W_orig, b = scaler.original_weights(W)
    assert np.isfinite(W_orig).all() and np.isfinite(b).all()
    np.testing.assert_allclose(X @ W_orig + b, scaler.inverse_Y(scaler.transform_X(X) @ W), rtol=1e-15)


def test_scaler_rejects_bad_input():
    s = Scaler.fit(np.ones((3, 2)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="X has 3 columns but the scaler was fit on 2"):
        s.transform_X(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"lacks \['y_std'\]"):
        Scaler.from_dict({"x_mean": [0], "x_std": [1], "y_mean": [0]})
    with pytest.raises(ValueError, match="y_std=.*one positive number"):
        Scaler.from_dict({"x_mean": [0], "x_std": [1], "y_mean": [0], "y_std": [0.0]})
    with pytest.raises(ValueError, match="expected a 2-D array"):
        Scaler.fit(np.ones(3), np.ones((3, 1)))


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "npy", "npz"])
@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 100])
def test_iter_chunks_equals_full_load(tmp_path, table, fmt, chunk_rows, monkeypatch):
    monkeypatch.setattr(delimited, "BLOCK_BYTES", 256)  # several pyarrow batches per text file
    path = write_all_formats(tmp_path, table)[fmt]
    full = load_file(path, features=[3, 0], targets=[1, 2])
    chunks = list(iter_chunks(path, features=[3, 0], targets=[1, 2], chunk_rows=chunk_rows))
    sizes = [len(X) for X, _ in chunks]
    assert sizes[:-1] == [chunk_rows] * (len(sizes) - 1) and 0 < sizes[-1] <= chunk_rows
    np.testing.assert_array_equal(np.vstack([X for X, _ in chunks]), full.X)
    np.testing.assert_array_equal(np.vstack([Y for _, Y in chunks]), full.Y)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npy", "npz"])
def test_file_stats_equals_stats_of_full_arrays(tmp_path, rng, fmt):
    T = rng.standard_normal((50, 4))
    path = write_all_formats(tmp_path, T)[fmt]
    s = file_stats(path, chunk_rows=8)
    ref = Stats.of(T[:, :3], T[:, 3:])
    for name in ("A", "C", "sum_x", "sum_y"):
        np.testing.assert_allclose(getattr(s, name), getattr(ref, name), rtol=1e-13, atol=1e-13)
    assert s.n == 50 and s.yy == pytest.approx(ref.yy, rel=1e-13)


def test_npy_streams_through_a_memory_map(tmp_path, rng):
    T = rng.standard_normal((100_000, 5))  # 4 MB on disk
    np.save(tmp_path / "big.npy", T)
    tracemalloc.start()
    s = file_stats(tmp_path / "big.npy", chunk_rows=5_000)  # chunks of 200 kB
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < T.nbytes / 4
    np.testing.assert_allclose(s.A, T[:, :4].T @ T[:, :4], rtol=1e-10)


def test_streamed_csv_reports_the_line_of_a_late_bad_cell(tmp_path, monkeypatch):
    monkeypatch.setattr(delimited, "BLOCK_BYTES", 256)
    rows = "".join(f"{i},{2 * i}\n" + ("\n" if i % 5 == 0 else "") for i in range(40))
    path = write_text(tmp_path, "a,b\n" + rows + "41,nan\n")
    lines = path.read_text().splitlines()
    with pytest.raises(DataError, match=f"line {len(lines)}, column 'b': a missing value") as err:
        for _ in iter_chunks(path, chunk_rows=4):
            pass
    assert err.value.row == len(lines) and lines[err.value.row - 1] == "41,nan"


def test_iter_chunks_checks_its_arguments_at_the_call(tmp_path):
    with pytest.raises(ValueError, match="chunk_rows=0 must be a positive integer"):
        iter_chunks(tmp_path / "x.csv", chunk_rows=0)
    with pytest.raises(DataError, match="does not exist"):
        iter_chunks(tmp_path / "x.csv")  # raises before the first chunk is asked for


@settings(max_examples=30, deadline=None)
@given(
    T=arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(2, 5)),
             elements=st.floats(allow_nan=False, allow_infinity=False)),
    delimiter=st.sampled_from([",", "\t", ";", "|"]),
    header=st.booleans(),
)
def test_csv_round_trip_random_matrices(tmp_path_factory, T, delimiter, header):
    names = [f"v{j}" for j in range(T.shape[1])] if header else None
    path = write_csv(tmp_path_factory.mktemp("rt") / "r.csv", names, T, delimiter=delimiter)
    ds = load_file(path, delimiter=delimiter)
    np.testing.assert_array_equal(np.hstack([ds.X, ds.Y]), T)
    X, _ = next(iter_chunks(path, delimiter=delimiter, chunk_rows=len(T)))
    np.testing.assert_array_equal(X, T[:, :-1])


# ---------------------------------------------------------------- malformed text files

TEXT_CASES = [
    # (file content, expected message pieces, row, column)
    ("", ["d.csv is empty"], None, None),
    ("\n\n\n", ["d.csv is empty"], None, None),
    ("a,b\n", ["header (line 1) but no data rows", "header=False"], 1, None),
    ("a,b,c\n1,2,3\n\n4,5\n", ["d.csv: line 4", "2 fields, expected 3", "comma"], 4, None),
    ("a,b\n1,2\n3,4,5\n", ["line 3", "3 fields, expected 2"], 3, None),
    ("a,b\n1,2\n3,x\n", ["line 3, column 'b'", "the text 'x'", "numeric column"], 3, "b"),
    ("a,b\n1,2\n1e400,3\n", ["line 3, column 'a'", "'1e400'", "out of float64 range"], 3, "a"),
    ("a,b\n-1e999,2\n", ["line 2, column 'a'", "out of float64 range"], 2, "a"),
    ("a,b\n1,2\n\n3,nan\n", ["line 4, column 'b'", "a missing value ('nan')"], 4, "b"),
    ("a,b\n1,NA\n", ["line 2, column 'b'", "a missing value ('NA')"], 2, "b"),
    ("a,b\n1,inf\n", ["line 2, column 'b'", "an infinite value ('inf')"], 2, "b"),
    ("a,b\n1,2\n,3\n", ["line 3, column 'a'", "an empty cell", "fill or drop"], 3, "a"),
    ("a,b\n1,  \n", ["line 2, column 'b'", "an empty cell"], 2, "b"),
    ("a;b;c\n1;2;3\n", ["single column", "2 semicolon(s)", "delimiter=';'", "--delimiter ';'"], 1, None),
    ("a\tb\n1\t2\n", ["single column", "tab", "delimiter='\\\\t'"], 1, None),
    ("a,b\n1,5;2\n", ["line 2, column 'b'", "'5;2'"], 2, "b"),
    ("x\n1\n2\n", ["no feature columns left", "['x']"], None, None),
]


@pytest.mark.parametrize(("text", "pieces", "row", "column"), TEXT_CASES)
def test_malformed_text_files(tmp_path, text, pieces, row, column):
    path = write_text(tmp_path, text)
    for read in (load_file, lambda p: list(iter_chunks(p, chunk_rows=1))):
        with pytest.raises(DataError) as err:
            read(path)
        message = str(err.value)
        assert message.startswith(str(path)) or "d.csv" in message
        for piece in pieces:
            assert piece in message, (piece, message)
        assert (err.value.row, err.value.column, err.value.path) == (row, column, str(path))


def test_decimal_comma_hint(tmp_path):
    path = write_text(tmp_path, "a;b\n1,5;2\n")
    with pytest.raises(DataError, match=r"line 2, column 'a'.*decimal comma: write 1\.5, not 1,5\."):
        load_file(path, delimiter=";")


# ---------------------------------------------------------------- malformed selections and paths


@pytest.mark.parametrize(
    ("kwargs", "pieces"),
    [
        ({"features": ["a", "zz"]}, ["features: no column named 'zz'", "available: 'a', 'b', 'c', 'd'"]),
        ({"targets": 4}, ["targets: column index 4 is out of range", "4 columns", "0 to 3"]),
        ({"features": "-5"}, ["column index -5 is out of range"]),
        ({"features": "a,b", "targets": "b"}, ["['b']", "both features and targets"]),
        ({"features": ["d"]}, ["['d']", "both features and targets", "targets=..."]),
        ({"features": "a,a"}, ["selects column(s) ['a'] more than once"]),
        ({"features": ""}, ["features=''", "column names or integer indices"]),
        ({"targets": [True]}, ["targets=[True]"]),
        ({"header": "yes"}, ["header='yes' must be 'auto', True or False"]),
        ({"delimiter": ";;"}, ["delimiter=';;' for", "must be one character"]),
    ],
)
def test_bad_selections(tmp_path, table, kwargs, pieces):
    path = write_all_formats(tmp_path, table)["csv"]
    with pytest.raises(DataError) as err:
        load_file(path, **kwargs)
    for piece in pieces:
        assert piece in str(err.value), (piece, str(err.value))


def test_duplicate_header_names_need_an_index(tmp_path):
    path = write_text(tmp_path, "a,a,y\n1,2,3\n")
    with pytest.raises(DataError, match=r"'a' appears 2 times .*indices \[0, 1\]"):
        load_file(path, features=["a"])
    assert load_file(path, features=[1]).X.tolist() == [[2.0]]


def test_bad_paths_and_extensions(tmp_path, table):
    with pytest.raises(DataError, match="nope.csv does not exist. Check the path"):
        load_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        load_file(tmp_path)
    sheet = write_text(tmp_path, "a,b\n1,2\n", "d.xlsx")
    with pytest.raises(DataError, match=r"extension '\.xlsx'; supported are \.csv, \.tsv.*\.npz.*--delimiter"):
        load_file(sheet)
    assert load_file(sheet, delimiter=",").n_samples == 1
    with pytest.raises(DataError, match="applies to CSV/TSV files only"):
        load_file(write_all_formats(tmp_path, table)["npy"], delimiter=",")


def test_data_error_is_a_value_error_and_pickles(tmp_path):
    with pytest.raises(ValueError) as err:
        load_file(write_text(tmp_path, "a,b\n1,x\n"))
    again = pickle.loads(pickle.dumps(err.value))
    assert isinstance(again, DataError) and str(again) == str(err.value)
    assert (again.path, again.row, again.column) == (err.value.path, 2, "b")


# ---------------------------------------------------------------- malformed binary files


def test_truncated_parquet(tmp_path, table):
    path = write_all_formats(tmp_path, table)["parquet"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"t.parquet cannot be read as Parquet .*truncated.*write it again"):
        load_file(path)


def test_parquet_text_column_nulls_and_no_rows(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"name": ["u", "v"], "x": [1.0, 2.0], "y": [1, None]}), path)
    with pytest.raises(DataError, match="column 'name' has type string; expected numbers") as err:
        load_file(path)
    assert err.value.column == "name"
    with pytest.raises(DataError, match=r"row 2, column 'y': a missing value \('null'\)") as err:
        load_file(path, features=["x"])
    assert err.value.row == 2
    pq.write_table(pa.table({"x": [np.inf, 2.0], "y": [1.0, 2.0]}), path)
    with pytest.raises(DataError, match=r"row 1, column 'x': an infinite value"):
        load_file(path)
    pq.write_table(pa.table({"x": pa.array([], pa.float64()), "y": pa.array([], pa.float64())}), path)
    with pytest.raises(DataError, match="has 0 rows"):
        load_file(path)


def test_truncated_and_foreign_npy(tmp_path, table):
    path = write_all_formats(tmp_path, table)["npy"]
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataError, match=r"t.npy is truncated: .*shape \(7, 4\).*has \d+ bytes"):
        load_file(path)
    fake = write_text(tmp_path, "a,b\n1,2\n", "fake.npy")
    with pytest.raises(DataError, match="fake.npy is not a readable NPY file"):
        load_file(fake)


class _Touch:
    """Unpickling this object would create a file: a harmless stand-in for malicious code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_object_npy_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    np.save(tmp_path / "obj.npy", np.array([[_Touch(marker), 1.0]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"holds Python objects \(dtype object\).*allow_pickle=False"):
        load_file(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", X=np.array([[_Touch(marker)]], dtype=object), Y=np.ones((1, 1)))
    with pytest.raises(DataError, match="array 'X' holds Python objects.*allow_pickle=False"):
        load_file(tmp_path / "obj.npz")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("array", "pieces"),
    [
        (np.ones(5), ["shape (5,)", "expected a 2-D array"]),
        (np.ones((2, 3, 4)), ["shape (2, 3, 4)", "expected a 2-D array"]),
        (np.array([["a", "b"]]), ["dtype <U1", "expected numbers"]),
        (np.ones((2, 2), dtype=complex), ["dtype complex128", "expected numbers"]),
        (np.ones((0, 3)), ["shape (0, 3)", "at least one row"]),
        (np.array([[1.0, 2.0], [3.0, np.nan]]), ["row 2, column 'col1'", "a missing value ('nan')"]),
    ],
)
def test_malformed_npy(tmp_path, array, pieces):
    np.save(tmp_path / "m.npy", array)
    with pytest.raises(DataError) as err:
        load_file(tmp_path / "m.npy")
    for piece in pieces:
        assert piece in str(err.value), (piece, str(err.value))


def test_malformed_npz(tmp_path):
    path = tmp_path / "z.npz"
    np.savez(path, a=np.ones((2, 2)), b=np.ones((2, 1)))
    with pytest.raises(DataError, match=r"holds arrays \['a', 'b'\]; expected arrays named X and Y"):
        load_file(path)
    np.savez(path, X=np.ones((3, 2)), Y=np.ones((2, 1)))
    with pytest.raises(DataError, match="X has 3 rows but Y has 2"):
        load_file(path)
    np.savez(path, X=np.ones((3, 2)), Y=np.array([1.0, np.inf, 2.0]))
    with pytest.raises(DataError, match=r"row 2, column 'y0': an infinite value"):
        load_file(path)
    np.savez(path, X=np.ones((3, 2)), Y=np.ones(3))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="z.npz is not a readable NPZ archive.*truncated"):
        load_file(path)
