"""``linlab predict``: a checkpointed model's predictions for new inputs, written atomically.

The model is read with ``weights_only`` loading (nothing in the file runs as code). When
the model was trained on standardized data, the stored scaler maps the inputs the same
way and maps the predictions back to the targets' units:

    Ŷ = inverse_Y(forward(transform_X(X)))  with  forward(X) = (…(X W1 + b1) W2 + b2 …) WL + bL.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..atomic import atomic_write

# output extension -> format; text files carry the target names as a header
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
                  ".npy": "npy"}


@click.command()
@click.option("--checkpoint", "checkpoint_path", required=True, metavar="PATH",
              help="A checkpoint written by `linlab train --checkpoint`.")
@click.option("--input", "input_path", required=True, metavar="PATH",
              help="New inputs: a CSV, TSV, Parquet, NPY or NPZ file.")
@click.option("--output", "output_path", metavar="PATH",
              help="Where to write predictions: .csv, .tsv, .parquet or .npy (default: CSV on stdout).")
@click.option("--features", metavar="COLS",
              help="Input columns in the model's order: names or 0-based positions "
                   "(default: the training features' names when the input has them, else every column).")
@click.option("--delimiter", help="Field separator of a text input (default: from the extension).")
def predict(checkpoint_path, input_path, output_path, features, delimiter):
    """Predict targets for new inputs with a trained model.

    \b
    Examples:
      linlab predict --checkpoint run.ckpt --input new.csv --output pred.csv
      linlab predict --checkpoint run.ckpt --input new.parquet --features area,rooms --output pred.parquet
    """
    from ..checkpoint import checkpoint_params, load_checkpoint
    from .options import check_output_file

    if output_path is not None:
        check_output_file("--output", output_path,
                          inputs=[("--input", input_path), ("--checkpoint", checkpoint_path)])
        output_format(output_path)
    ckpt = load_checkpoint(checkpoint_path)
    factors, biases = checkpoint_params(ckpt)
    record = ckpt.get("data") or {}
    provenance = record.get("provenance") or {}
    X = _read_inputs(input_path, features, delimiter, provenance.get("features"), factors[0].shape[0])
    Y = predictions(X, factors, biases, record.get("scaler") or provenance.get("scaler"))
    names = target_names(provenance.get("targets"), Y.shape[1])
    if output_path is None:
        click.echo(csv_text(Y, names, ","), nl=False)
        return
    write_predictions(output_path, Y, names)
    click.echo(f"wrote {Y.shape[0]} predictions of {', '.join(names)} to {output_path}")


def match_columns(trained_on, names) -> list[int] | None:
    """Positions in `names` of the training features, a repeated name matched in order; None
    when some are missing.

    Examples
    --------
    >>> match_columns(["a", "a"], ("a", "a", "y"))
    [0, 1]
    >>> match_columns(["b", "a"], ("a", "b")), match_columns(["c"], ("a", "b"))
    ([1, 0], None)
    """
    free: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        free.setdefault(name, []).append(j)
    picked = []
    for name in trained_on:
        if not free.get(name):
            return None
        picked.append(free[name].pop(0))
    return picked


def _read_inputs(path, features, delimiter, trained_on, n_features: int) -> np.ndarray:
    """The input matrix (n, d): `features`, else the training features' names when present."""
    from ..data.files import load_features, open_table

    if features is None and trained_on:
        features = match_columns(trained_on, open_table(path, delimiter=delimiter).names)
    X, names = load_features(path, features=features, delimiter=delimiter)
    if X.shape[1] != n_features:
        hint = f"the training features were {list(trained_on)}" if trained_on else "it was trained on other data"
        raise ValueError(
            f"--input {str(path)!r} gives {X.shape[1]} feature columns ({', '.join(map(str, names))}), but the "
            f"model takes {n_features} ({hint}); choose them with --features."
        )
    return X


def predictions(X, factors, biases=None, scaler: dict | None = None) -> np.ndarray:
    """Ŷ of shape (n, k) for inputs X of shape (n, d), through the scaler when there is one.

    Examples
    --------
    >>> W1, W2 = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[1.0], [1.0]])
    >>> predictions(np.array([[1.0, 1.0]]), [W1, W2]).tolist()
    [[3.0]]
    >>> scaler = {"x_mean": [0.0, 0.0], "x_std": [1.0, 1.0], "y_mean": [10.0], "y_std": [2.0]}
    >>> predictions(np.array([[1.0, 1.0]]), [W1, W2], scaler=scaler).tolist()
    [[16.0]]
    """
    from ..data import Scaler
    from ..engines.numpy_engine import forward

    X = np.asarray(X, dtype=np.float64)
    if scaler is not None:
        scaler = Scaler.from_dict(scaler)
        X = scaler.transform_X(X)
    Y = forward(X, [np.asarray(W, dtype=np.float64) for W in factors], biases)[-1]
    return scaler.inverse_Y(Y) if scaler is not None else Y


def target_names(names, k: int) -> list[str]:
    """The training targets' names, or ``y0, y1, …`` when the data had none.

    Examples
    --------
    >>> target_names(None, 2), target_names(["price"], 1)
    (['y0', 'y1'], ['price'])
    """
    if names and len(names) == k:
        return [str(n) for n in names]
    return [f"y{j}" for j in range(k)]


def csv_text(Y, names, delimiter: str = ",") -> str:
    """Delimited text with a header row; 17 significant digits, so values read back exactly.

    Examples
    --------
    >>> csv_text(np.array([[0.1], [2.0]]), ["y"])
    'y\\n0.10000000000000001\\n2\\n'
    """
    lines = [delimiter.join(names)]
    lines += [delimiter.join(f"{v:.17g}" for v in row) for row in np.asarray(Y, dtype=np.float64)]
    return "\n".join(lines) + "\n"


def output_format(path) -> str:
    """The format an output file's extension asks for.

    Examples
    --------
    >>> output_format("pred.parquet"), output_format("out/p.CSV")
    ('parquet', 'csv')
    """
    suffix = Path(path).suffix
    if suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(
            f"--output {str(path)!r} has extension {suffix!r}; use one of {', '.join(OUTPUT_FORMATS)}."
        )
    return OUTPUT_FORMATS[suffix.lower()]


def write_predictions(path, Y, names) -> Path:
    """Write predictions by the extension of `path`, atomically (a temporary file, then a rename).

    Examples
    --------
    >>> import tempfile, os
    >>> out = write_predictions(os.path.join(tempfile.mkdtemp(), "p.csv"), np.array([[1.5]]), ["y"])
    >>> out.read_text()
    'y\\n1.5\\n'
    """
    path = Path(path)
    fmt = output_format(path)
    if fmt in ("csv", "tsv"):
        text = csv_text(Y, names, "\t" if fmt == "tsv" else ",")
        return atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    if fmt == "npy":
        return atomic_write(path, lambda f: np.save(f, np.asarray(Y, dtype=np.float64)))
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: np.asarray(Y[:, j], dtype=np.float64) for j, name in enumerate(names)})
    return atomic_write(path, lambda f: pq.write_table(table, f))
