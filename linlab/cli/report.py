"""``linlab report``: plots and a report (Markdown and self-contained HTML) from a sweep table."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("table_path", metavar="SWEEP", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("linlab-report"),
              show_default=True, help="Folder for report.md, report.html and the plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the files written as one JSON object.")
def report(table_path, out, as_json):
    """Make the report of a sweep table written by `linlab sweep` (Parquet, or CSV with its histories).

    \b
    Examples:
      linlab sweep --config examples/sweep.toml --out sweep.parquet && linlab report sweep.parquet
      linlab report results.csv --out sweep-report
    """
    from ..report.sweep import write_sweep_report
    from ..sweeps import read_table
    from .reproduce import check_output_dir

    if not table_path.is_file():
        raise FileNotFoundError(f"SWEEP {str(table_path)!r}: no such file; give the table that "
                                "`linlab sweep --out` wrote.")
    check_output_dir("--out", out)
    table = read_table(table_path, csv=table_path.suffix.lower() == ".csv")
    files = write_sweep_report(table, out, source=table_path.name)
    if as_json:
        click.echo(json.dumps({k: str(v) for k, v in files.items()}))
        return
    click.echo(f"report: {files['report']} ({len(files)} files in {out})")
