"""`linlab train` on data files and `linlab predict` with the checkpoints it writes."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from linlab import TrainConfig, fit
from linlab.atomic import atomic_write
from linlab.checkpoint import checkpoint_params, load_checkpoint
from linlab.cli.predict import predictions
from linlab.data import Scaler, load_file

pytestmark = pytest.mark.usefixtures("in_tmp")


@pytest.fixture(scope="module")
def table():
    # an exact linear relation in badly scaled units, with an intercept: y = X w + 7
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3)) * [1.0, 10.0, 100.0] + [5.0, -3.0, 50.0]
    Y = X @ np.array([[1.0, -2.0], [0.2, 0.1], [0.03, 0.01]]) + [7.0, 1.0]
    return X, Y


def write_csv(path, names, block, delimiter=","):
    lines = [delimiter.join(names)] + [delimiter.join(f"{v:.17g}" for v in row) for row in block]
    path.write_text("\n".join(lines) + "\n")


run = run_cli


def train_json(*args) -> dict:
    result = run("train", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "npy", "npz"])
def test_train_on_a_file_agrees_with_the_library(in_tmp, table, fmt):
    X, Y = table
    block = np.hstack([X, Y[:, :1]])
    path = in_tmp / f"data.{fmt}"
    if fmt in ("csv", "tsv"):
        write_csv(path, ["a", "b", "c", "price"], block, "," if fmt == "csv" else "\t")
    elif fmt == "parquet":
        pq.write_table(pa.table({n: block[:, j] for j, n in enumerate(["a", "b", "c", "price"])}), path)
    elif fmt == "npy":
        np.save(path, block)
    else:
        np.savez(path, X=X, Y=Y[:, :1])
    record = train_json("--data", path.name, "--standardize", "--lr", "1e-3", "--epochs", 20)
    direct = fit(load_file(path, standardize=True), TrainConfig(widths=(3, 1), lr=1e-3, epochs=20))
    assert record["summary"]["final_loss"] == pytest.approx(direct.final_loss, rel=1e-12)
    assert record["config"]["widths"] == [3, 1] and record["data"]["provenance"]["standardize"]


def test_feature_and_target_columns_and_delimiter(in_tmp, table):
    X, Y = table
    write_csv(in_tmp / "d.txt", ["a", "b", "c", "y1", "y2"], np.hstack([X, Y]), ";")
    record = train_json("--data", "d.txt", "--delimiter", ";", "--features", "c,a", "--targets", "y2,y1",
                        "--lr", "1e-6", "--epochs", 5)
    assert record["config"]["widths"] == [2, 2]
    assert record["data"]["provenance"]["features"] == ["c", "a"]
    assert record["data"]["provenance"]["targets"] == ["y2", "y1"]


def trained_checkpoint(in_tmp, table, *extra):
    X, Y = table
    write_csv(in_tmp / "train.csv", ["a", "b", "c", "y1", "y2"], np.hstack([X, Y]))
    record = train_json("--data", "train.csv", "--targets", "y1,y2", "--standardize", "--bias", "--lr", "auto",
                        "--reduction", "mean", "--tol", "1e-14", "--epochs", 400, "--checkpoint", "m.ckpt", *extra)
    assert record["summary"]["outcome"] == "converged"
    return in_tmp / "m.ckpt"


def test_predict_maps_inputs_through_the_scaler_and_back(in_tmp, table):
    X, Y = table
    ckpt = trained_checkpoint(in_tmp, table)
    # new inputs: other column order, an extra id column, no targets
    write_csv(in_tmp / "new.csv", ["id", "c", "a", "b"], np.column_stack([np.arange(10), X[:10, [2, 0, 1]]]))
    result = run("predict", "--checkpoint", ckpt.name, "--input", "new.csv", "--output", "pred.csv")
    assert result.exit_code == 0, result.output
    lines = (in_tmp / "pred.csv").read_text().splitlines()
    assert lines[0] == "y1,y2"
    got = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    # theory: the relation is exactly linear, so a converged model recovers Y in its own units
    np.testing.assert_allclose(got, Y[:10], rtol=1e-5, atol=1e-5 * np.abs(Y).max())
    # agreement: the stored parameters and scaler, applied by hand
    saved = load_checkpoint(ckpt)
    factors, biases = checkpoint_params(saved)
    scaler = Scaler.from_dict(saved["data"]["scaler"])
    by_hand = scaler.inverse_Y(scaler.transform_X(X[:10]) @ factors[0] + biases[0])
    np.testing.assert_allclose(got, by_hand, rtol=1e-14, atol=0)


@pytest.mark.parametrize("ext", ["tsv", "parquet", "npy"])
def test_output_format_follows_the_extension(in_tmp, table, ext):
    X, _ = table
    ckpt = trained_checkpoint(in_tmp, table)
    np.save(in_tmp / "new.npy", X[:6])
    assert run("predict", "--checkpoint", ckpt, "--input", "new.npy", "--output", "p.csv").exit_code == 0
    assert run("predict", "--checkpoint", ckpt, "--input", "new.npy", "--output", f"p.{ext}").exit_code == 0
    reference = np.loadtxt(in_tmp / "p.csv", delimiter=",", skiprows=1)
    if ext == "tsv":
        assert (in_tmp / "p.tsv").read_text().splitlines()[0] == "y1\ty2"
        got = np.loadtxt(in_tmp / "p.tsv", delimiter="\t", skiprows=1)
    elif ext == "parquet":
        t = pq.read_table(in_tmp / "p.parquet")
        assert t.column_names == ["y1", "y2"]
        got = np.column_stack([t[n].to_numpy() for n in t.column_names])
    else:
        got = np.load(in_tmp / "p.npy")
    np.testing.assert_array_equal(got, reference)
    assert not list(in_tmp.glob(".p.*tmp-*"))


def test_predict_without_scaler_is_the_end_to_end_product(in_tmp):
    assert run("train", "--data", "seed", "--widths", "10,5,2", "--epochs", 25, "--checkpoint", "s.ckpt",
               "-q").exit_code == 0
    X = np.random.default_rng(1).normal(size=(4, 10))
    np.save(in_tmp / "x.npy", X)
    result = run("predict", "--checkpoint", "s.ckpt", "--input", "x.npy")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "y0,y1"
    factors, _ = checkpoint_params(load_checkpoint(in_tmp / "s.ckpt"))
    got = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    np.testing.assert_allclose(got, X @ factors[0] @ factors[1], rtol=1e-13)


def test_a_failed_write_keeps_the_old_file(in_tmp):
    target = in_tmp / "p.csv"
    target.write_text("old\n")

    def broken(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert target.read_text() == "old\n"
    assert [p.name for p in in_tmp.iterdir()] == ["p.csv"]


def test_predictions_with_biases_and_depth():
    rng = np.random.default_rng(3)
    factors = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    biases = [rng.normal(size=4), rng.normal(size=2)]
    X = rng.normal(size=(5, 3))
    expected = (X @ factors[0] + biases[0]) @ factors[1] + biases[1]
    np.testing.assert_allclose(predictions(X, factors, biases), expected, rtol=1e-14)


def test_predict_bad_inputs(in_tmp, table):
    X, _ = table
    ckpt = trained_checkpoint(in_tmp, table)
    np.save(in_tmp / "two.npy", X[:5, :2])
    write_csv(in_tmp / "new.csv", ["a", "b", "c"], X[:3])
    (in_tmp / "broken.csv").write_text("a,b,c\n1,2,3\n1,oops,3\n")
    cases = [
        (["--checkpoint", "none.ckpt", "--input", "new.csv"], "does not exist"),
        (["--checkpoint", ckpt.name, "--input", "none.csv"], "does not exist"),
        (["--checkpoint", ckpt.name, "--input", "two.npy"], "gives 2 feature columns"),
        (["--checkpoint", ckpt.name, "--input", "new.csv", "--output", "p.xlsx"], "has extension '.xlsx'"),
        (["--checkpoint", ckpt.name, "--input", "new.csv", "--features", "a,b,zz"], "no column named 'zz'"),
        (["--checkpoint", ckpt.name, "--input", "broken.csv"], "line 3, column 'b'"),
        (["--checkpoint", ckpt.name, "--input", "new.csv", "--output", "."], "is a folder"),
        (["--checkpoint", ckpt.name, "--input", "new.csv", "--output", "new.csv/p.csv"], "which is a file"),
        (["--checkpoint", "new.csv", "--input", "new.csv"], "not a readable torch checkpoint"),
    ]
    for args, message in cases:
        result = run("predict", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr and "Traceback" not in result.output, (args, result.stderr)


def test_outputs_never_overwrite_the_inputs(in_tmp, table):
    X, _ = table
    ckpt = trained_checkpoint(in_tmp, table)
    write_csv(in_tmp / "new.csv", ["a", "b", "c"], X[:3])
    before = {name: (in_tmp / name).read_bytes() for name in ("new.csv", ckpt.name, "train.csv")}
    for args, message in [
        (["predict", "--checkpoint", ckpt.name, "--input", "new.csv", "--output", "./new.csv"],
         "is the --input file"),
        (["predict", "--checkpoint", ckpt.name, "--input", "new.csv", "--output", ckpt.name + ".csv"], None),
        (["train", "--data", "train.csv", "--targets", "y1,y2", "--epochs", 2, "--checkpoint", "train.csv"],
         "is the --data file"),
    ]:
        result = run(*args)
        if message is None:  # a different file is fine
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
    assert {name: (in_tmp / name).read_bytes() for name in before} == before


def test_train_on_bad_files_says_where(in_tmp):
    (in_tmp / "ragged.csv").write_text("a,b,y\n1,2,3\n4,5\n")
    (in_tmp / "text.csv").write_text("a,b,y\n1,2,3\n4,five,6\n")
    (in_tmp / "empty.csv").write_text("")
    (in_tmp / "data.xyz").write_text("1,2\n")
    for name, message in [("ragged.csv", "line 3"), ("text.csv", "line 3, column 'b'"), ("empty.csv", "empty"),
                          ("data.xyz", "extension '.xyz'")]:
        result = run("train", "--data", name, "--epochs", 2)
        assert result.exit_code == 2, result.output
        assert message in result.stderr and "Traceback" not in result.output, (name, result.stderr)
    result = run("train", "--data", "text.csv", "--targets", "nope")
    assert result.exit_code == 2 and "no column named 'nope'" in result.stderr
