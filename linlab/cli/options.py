"""Settings of ``linlab train``: data sources, architectures and TOML config files.

Every flag of ``linlab train`` is also a key of a ``--config`` file, spelt like the
flag without its dashes (``log-every`` or ``log_every``). The file's values become the
command's defaults (click's ``default_map``), so they pass through the very same type
checks as flags, and any flag given on the command line overrides the file.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

from ..data.spec import load_data  # noqa: F401  (the commands' --data)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib

# groups of keys that say the same thing two ways: a flag for one drops the file's value of the other
ALTERNATIVES = (("widths",), ("depth", "width"))


def file_keys(command: click.Command) -> dict[str, str]:
    """Map every key a config file may hold to the name of the parameter it sets.

    Examples
    --------
    >>> cmd = click.Command("c", params=[click.Option(["--log-every"]), click.Option(["--json", "as_json"])])
    >>> file_keys(cmd)
    {'log_every': 'log_every', 'json': 'as_json'}
    """
    keys = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name == "config_file":
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                keys[opt[2:].replace("-", "_")] = param.name
    return keys


def read_config_file(path: str | Path, keys: dict[str, str]) -> dict:
    """Read a TOML config file into ``{parameter name: value}``, checking every key.

    Lists become comma-separated strings (``widths = [10, 5, 2]`` reads as ``"10,5,2"``)
    and the ``extra`` table becomes ``KEY=VALUE`` items, as the flags write them.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "run.toml")
    ...     _ = open(path, "w").write('widths = [10, 5, 2]\\nlog-every = 50\\n')
    ...     read_config_file(path, {"widths": "widths", "log_every": "log_every"})
    {'widths': '10,5,2', 'log_every': 50}
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"--config {str(path)!r} is a folder; give the path of a TOML file inside it.")
    if not path.is_file():
        raise FileNotFoundError(f"--config {str(path)!r}: no such file; give the path of a TOML file.")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(
            f"--config {str(path)!r} is not valid TOML: {e}. Write one `key = value` per line, "
            'strings in quotes, e.g. optimizer = "adam".'
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"--config {str(path)!r} is not UTF-8 text; save it as a UTF-8 TOML file.") from None
    settings = {}
    for key, value in table.items():
        name = keys.get(key.replace("-", "_"))
        if name is None:
            raise ValueError(
                f"--config {str(path)!r}: unknown key {key!r}; valid keys are: {', '.join(sorted(keys))}."
            )
        settings[name] = _flag_value(path, key, value)
    return settings


def _flag_value(path: Path, key: str, value):
    # a TOML value written the way its flag would take it
    if key == "extra" and not isinstance(value, (dict, list)):
        raise ValueError(f"--config {str(path)!r}: extra = {value!r} is not a table; write e.g. "
                         'extra = {group = "baseline"}.')
    if isinstance(value, dict):
        if key != "extra":
            raise ValueError(f"--config {str(path)!r}: {key!r} holds a table; give it a single value.")
        return [f"{k}={json.dumps(v)}" for k, v in value.items()]
    if isinstance(value, list):
        if key == "extra":
            return [str(v) for v in value]
        if any(isinstance(v, (list, dict)) for v in value):
            raise ValueError(f"--config {str(path)!r}: {key!r} holds nested lists; give a flat list.")
        return ",".join(str(v) for v in value)
    return value


def config_file_callback(ctx: click.Context, param: click.Parameter, value):
    """Eager ``--config`` callback: the file's values become the command's defaults.

    Examples
    --------
    >>> import tempfile, os
    >>> @click.command()
    ... @click.option("--config", "config_file", is_eager=True, callback=config_file_callback)
    ... @click.option("--epochs", type=int, default=750)
    ... @click.option("--lr", default="1e-5")
    ... def cmd(config_file, epochs, lr):
    ...     click.echo(f"epochs={epochs} lr={lr}")
    >>> path = os.path.join(tempfile.mkdtemp(), "run.toml")
    >>> _ = open(path, "w").write("epochs = 20\\nlr = 0.001\\n")
    >>> cmd(["--config", path, "--epochs", "5"], standalone_mode=False)
    epochs=5 lr=0.001
    """
    if value is not None:
        settings = read_config_file(value, file_keys(ctx.command))
        for p in ctx.command.params:
            if p.name in settings and not p.multiple:
                _check_type(value, p, settings[p.name], ctx)
        ctx.default_map = {**(ctx.default_map or {}), **settings}
    return value


def _check_type(path, param: click.Parameter, value, ctx: click.Context) -> None:
    # the check a flag's text gets: `epochs = 1.5` or `bias = 3` are refused, not rounded or crashed on
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))  # epochs = 1e3 is 1000
    try:
        param.type.convert(text, param, ctx)
    except click.BadParameter as e:
        if isinstance(param.type, click.types.BoolParamType):
            reason = "write true or false"
        else:
            reason = e.message.rstrip(".") + ("; write a whole number" if param.type == click.INT else "")
        raise ValueError(f"--config {str(path)!r}: {param.name} = {value!r} is not valid: {reason}.") from None


def drop_overridden(ctx: click.Context, settings: dict) -> dict:
    """Drop a file's ``widths`` when ``--depth``/``--width`` are given as flags, and the reverse.

    Examples
    --------
    >>> @click.command()
    ... @click.option("--widths")
    ... @click.option("--depth", type=int)
    ... @click.option("--width", type=int)
    ... @click.pass_context
    ... def cmd(ctx, **settings):
    ...     click.echo(drop_overridden(ctx, settings))
    >>> cmd(["--depth", "3"], default_map={"widths": "10,5,2"}, standalone_mode=False)
    {'depth': 3, 'widths': None, 'width': None}
    """
    from click.core import ParameterSource

    def given(names, source):
        return any(ctx.get_parameter_source(n) == source for n in names)

    settings = dict(settings)
    for group, other in (ALTERNATIVES, ALTERNATIVES[::-1]):
        if given(group, ParameterSource.COMMANDLINE) and given(other, ParameterSource.DEFAULT_MAP):
            settings.update({n: None for n in other})
    return settings


def data_file(spec) -> str | None:
    """The `spec` of ``--data`` (or a grid's ``data``) when it names a file, else None.

    Examples
    --------
    >>> data_file("seed"), data_file("synthetic:n=50") is None
    (None, True)
    """
    return spec if spec is not None and Path(spec).is_file() else None


def check_output_file(option: str, path, inputs=()) -> None:
    """Refuse, before any work, a file path that is a folder, lies under a file, or is one
    of the command's `inputs` (``(option, path)`` pairs), which writing would overwrite.

    Examples
    --------
    >>> import tempfile
    >>> check_output_file("--output", tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    IsADirectoryError: --output '...' is a folder; give a file name inside it, such as ....
    >>> check_output_file("--output", "new.csv", inputs=[("--input", "./new.csv")])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: --output 'new.csv' is the --input file; writing it would overwrite that file. ...
    """
    path = Path(path)
    for name, other in inputs:
        if other is not None and path.resolve() == Path(other).resolve():
            raise FileExistsError(f"{option} {str(path)!r} is the {name} file; writing it would overwrite "
                                  "that file. Give another file name.")
    if path.is_dir():
        raise IsADirectoryError(
            f"{option} {str(path)!r} is a folder; give a file name inside it, such as {path / 'out'}."
        )
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise NotADirectoryError(f"{option} {str(path)!r} lies under {str(parent)!r}, which is a file; choose "
                                 "another folder.")
    try:  # a file made and dropped at once: the only test of writability that root also fails
        tempfile.TemporaryFile(dir=parent if parent is not None else ".").close()
    except OSError as e:
        raise PermissionError(f"{option} {str(path)!r} cannot be written: {str(parent)!r} refuses new files "
                              f"({e.strerror}); choose a folder you can write to.") from None


def parse_lr(text) -> float | str:
    """A learning rate: ``"auto"`` or a number (its range is checked by TrainConfig).

    Examples
    --------
    >>> parse_lr("1e-3"), parse_lr("auto")
    (0.001, 'auto')
    """
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f'--lr {text!r} is not a number; give e.g. --lr 1e-4, or --lr auto.') from None


def parse_betas(text) -> tuple[float, float]:
    """Adam's ``"0.9,0.999"``.

    Examples
    --------
    >>> parse_betas("0.9, 0.99")
    (0.9, 0.99)
    """
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    try:
        betas = tuple(float(t) for t in items)
    except (TypeError, ValueError):
        betas = ()
    if len(betas) != 2:
        raise ValueError(f"--betas {text!r} must be two numbers like '0.9,0.999'.")
    return betas


def parse_extra(items) -> dict:
    """Labels ``KEY=VALUE``; values read as JSON when they can be, as text otherwise.

    Examples
    --------
    >>> parse_extra(["name=base", "rep=3"])
    {'name': 'base', 'rep': 3}
    """
    if isinstance(items, dict):
        return dict(items)
    extra = {}
    for item in items or ():
        key, eq, value = str(item).partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--extra {item!r} is not KEY=VALUE; write e.g. --extra group=baseline.")
        try:
            extra[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            extra[key.strip()] = value
    return extra


def resolve_widths(widths, depth, width, n_features: int, n_targets: int) -> tuple[int, ...]:
    """Widths from ``--widths`` or from ``--depth``/``--width`` and the data's d and k.

    ``--depth L --width h`` gives ``(d, h, ..., h, k)`` with L − 1 hidden layers; nothing
    at all gives plain regression ``(d, k)``.

    Examples
    --------
    >>> resolve_widths(None, 3, 4, 10, 2)
    (10, 4, 4, 2)
    >>> resolve_widths("10,5,2", None, None, 10, 2)
    (10, 5, 2)
    >>> resolve_widths(None, None, None, 6, 1)
    (6, 1)
    """
    from ..config import check_depth, parse_widths

    d, k = n_features, n_targets
    if widths is not None:
        if depth is not None or width is not None:
            raise ValueError("give either --widths or --depth/--width, not both.")
        ws = parse_widths(widths)
        if (ws[0], ws[-1]) != (d, k):
            raise ValueError(
                f"--widths {','.join(map(str, ws))} runs from {ws[0]} to {ws[-1]}, but the data has "
                f"{d} features and {k} targets; use --widths {d},...,{k}, or --depth/--width, which "
                "take both ends from the data."
            )
        return ws
    depth = (1 if width is None else 2) if depth is None else depth
    if depth < 1:
        raise ValueError(f"--depth {depth} must be at least 1 (1 is plain linear regression).")
    check_depth(depth, "--depth")
    if depth == 1:
        if width is not None:
            raise ValueError(f"--width {width} needs --depth 2 or more; depth 1 has no hidden layer.")
        return (d, k)
    if width is None or width < 1:
        raise ValueError(f"--depth {depth} needs --width H >= 1, the units of each hidden layer, e.g. --width 5.")
    return (d, *[width] * (depth - 1), k)


def cluster_options(f):
    """``--cluster ADDRESS|local:N`` and ``--dashboard``, for commands that can use a Dask cluster
    (read them with :func:`use_cluster`)."""
    f = click.option("--dashboard", is_flag=True,
                     help="Serve the local cluster's Dask dashboard on 127.0.0.1 (off by default).")(f)
    return click.option(
        "--cluster", metavar="ADDRESS|local:N",
        help='Run on a Dask cluster: a scheduler address (tcp://host:8786, tls://...), or local:N to start N '
             'worker processes on this machine. Needs pip install "linlab[dask]".',
    )(f)


def use_cluster(cluster: str | None, dashboard: bool = False):
    """The Dask client of ``--cluster`` for the rest of the command (None without it).

    While the command runs the client is the active one, so sharded ``--data`` is
    summarised on the cluster. The dashboard's address goes to stderr.

    Examples
    --------
    >>> use_cluster(None) is None
    True
    """
    if cluster is None:
        if dashboard:
            raise ValueError("--dashboard needs --cluster local:N (a remote scheduler serves its own).")
        return None
    from ..distributed.cluster import connect, parse_cluster, require_dask

    parse_cluster(cluster)
    try:
        require_dask()
    except ImportError as e:
        raise ValueError(f"--cluster {cluster}: {e}") from None
    client = click.get_current_context().with_resource(connect(cluster, dashboard=dashboard))
    if dashboard:
        click.echo(f"Dask dashboard: {client.dashboard_link}", err=True)
    return client
