"""Delimited text tables (CSV, TSV) read with pyarrow, errors located by line and column.

pyarrow parses and converts; when it rejects a file, a second, plain-Python pass over the
lines finds the line an editor would show (header = line 1, blank lines counted) and the
cell. That pass runs only on the error path, so well-formed files are read at pyarrow's
speed. Line numbers assume one row per line (no quoted line breaks inside values).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from .errors import FINITE_FIX, DataError, describe_value, where

SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
DELIMITER_ALIASES = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
# cells read as missing; they are then reported with their position, never silently kept
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "-NaN", "-nan", "null", "NULL", "None", "#N/A", "<NA>"]
BLOCK_BYTES = 1 << 22  # bytes pyarrow parses per streamed batch (and at least 4 rows' worth)


def resolve_delimiter(path: Path, delimiter: str | None) -> str:
    """The one-character delimiter: given, or tab for ``.tsv``/``.tab`` files and comma otherwise.

    ``"\\t"`` (backslash, t as typed in a shell), ``"tab"``, ``"comma"``, ``"semicolon"``
    and ``"pipe"`` are accepted as names.

    Examples
    --------
    >>> resolve_delimiter(Path("a.tsv"), None) == "\\t", resolve_delimiter(Path("a.csv"), "semicolon")
    (True, ';')
    """
    if delimiter is None:
        return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    delimiter = DELIMITER_ALIASES.get(delimiter, delimiter)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise DataError(
            f"delimiter={delimiter!r} for {path} must be one character other than a quote or a "
            "line break; e.g. ',', ';', '\\t' (tab) or '|'.", path=path,
        )
    return delimiter


def _split(line: str, delimiter: str) -> list[str]:
    """Fields of one line, honouring double quotes as pyarrow does."""
    return next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-blank line."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        for number, line in enumerate(f, start=1):
            if line.rstrip("\r\n"):
                yield number, line


# byte-order marks of encodings that a UTF-8 reader would take for one column of garbage
_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def _check_encoding(path: Path) -> None:
    """Refuse UTF-16/32 text (a byte-order mark, or ASCII with a NUL after each byte) and binary data."""
    with open(path, "rb") as f:
        head = f.read(4096)
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if encoding is None and b"\0" in head:
        even, odd = head[0::2], head[1::2]  # ASCII in UTF-16: one half all NUL, the other none
        halves = ((even, odd), (odd, even))
        if not any(a.count(0) >= 0.9 * len(a) and b.count(0) <= 0.01 * len(b) for a, b in halves):
            raise DataError(f"{path} holds NUL bytes: it is binary data, not delimited text. Give a CSV or "
                            "TSV file, or a Parquet, NPY or NPZ file with its own extension.", path=path)
        encoding = "UTF-16"
    if encoding is not None:
        raise DataError(
            f"{path} is {encoding} text; linlab reads delimited text as UTF-8. Save it as UTF-8, "
            f"e.g. iconv -f {encoding} -t UTF-8 {path.name} > utf8-{path.name}", path=path,
        )


@dataclass(frozen=True)
class DelimitedFile:
    """A CSV or TSV file: its delimiter, column names and header line, ready to stream.

    Build it with `DelimitedFile.open`; `blocks` yields the selected columns as float64.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> _ = open(path, "w").write("a,b\\n1,2\\n3,4\\n")
    >>> table = DelimitedFile.open(path)
    >>> table.names, [b.tolist() for b in table.blocks([1, 0])]
    (('a', 'b'), [[[2.0, 1.0], [4.0, 3.0]]])
    """

    path: Path
    format: str  # "csv" or "tsv"
    delimiter: str
    names: tuple[str, ...]
    header_line: int  # 1-based line of the header; 0 when the file has none
    line_bytes: int = 0  # longest of the first two non-blank lines; a parse block must hold whole rows

    @classmethod
    def open(cls, path, *, delimiter: str | None = None, header="auto") -> DelimitedFile:
        """Read the first lines: choose the delimiter, detect the header, name the columns.

        With ``header="auto"`` the first non-blank line is a header unless every field in it
        parses as a number. Without a header the columns are named ``col0``, ``col1``, ...
        """
        path = Path(path)
        delimiter = resolve_delimiter(path, delimiter)
        _check_encoding(path)
        lines = _lines(path)
        head = [line for line, _ in zip(lines, range(2))]  # the first two non-blank lines
        lines.close()
        if not head:
            raise DataError(f"{path} is empty; expected a header line and rows of numbers.", path=path)
        number, text = head[0]
        fields = _split(text, delimiter)
        _check_delimiter(path, number, fields, text, delimiter)
        if header not in ("auto", True, False):
            raise DataError(f"header={header!r} must be 'auto', True or False.", path=path)
        has_header = header is True or (header == "auto" and not all(_is_number(f) or not f for f in fields))
        if has_header and len(head) == 1:
            raise DataError(
                f"{path} has a header (line {number}) but no data rows; add rows of numbers, or "
                "pass header=False if that line is data.", path=path, row=number,
            )
        names = tuple(f.strip() for f in fields) if has_header else tuple(f"col{j}" for j in range(len(fields)))
        fmt = "tsv" if delimiter == "\t" else "csv"
        line_bytes = max(len(t.encode()) for _, t in head)
        return cls(path, fmt, delimiter, names, number if has_header else 0, line_bytes)

    def blocks(self, columns: Sequence[int], chunk_rows: int | None = None) -> Iterator[np.ndarray]:
        """Yield the `columns` (indices into `names`) as float64 arrays, all rows at once
        (``chunk_rows=None``, multithreaded) or streamed in pyarrow batches.

        Every yielded value is finite; anything else raises `DataError` at its line.
        """
        internal = [f"c{j}" for j in range(len(self.names))]
        block_size = max(BLOCK_BYTES, 4 * self.line_bytes)
        read = pacsv.ReadOptions(column_names=internal, skip_rows=self.header_line, block_size=block_size)
        parse = pacsv.ParseOptions(delimiter=self.delimiter, quote_char='"', ignore_empty_lines=True)
        convert = pacsv.ConvertOptions(
            column_types={internal[j]: pa.float64() for j in columns},
            include_columns=[internal[j] for j in columns],
            null_values=NULL_VALUES, strings_can_be_null=False, quoted_strings_can_be_null=True,
        )
        offset = 0
        try:
            if chunk_rows is None:
                batches = [pacsv.read_csv(self.path, read, parse, convert)]
            else:
                batches = pacsv.open_csv(self.path, read, parse, convert)
            for batch in batches:
                block = np.empty((batch.num_rows, len(columns)))  # (rows, selected columns)
                for j in range(len(columns)):
                    block[:, j] = batch.column(j).to_numpy(zero_copy_only=False)
                self._check_finite(block, offset, columns)
                offset += len(block)
                if len(block):
                    yield block
        except pa.ArrowException as exc:
            raise self._explain(exc, columns) from None

    def _locate(self, data_row: int) -> tuple[int, list[str]]:
        """Line number and fields of the 0-based data row `data_row`."""
        rows = ((n, t) for n, t in _lines(self.path) if n > self.header_line)
        for i, (number, text) in enumerate(rows):
            if i == data_row:
                return number, _split(text, self.delimiter)
        raise AssertionError(f"data row {data_row} is past the end of {self.path}")  # pragma: no cover

    def _check_finite(self, block: np.ndarray, offset: int, columns: Sequence[int]) -> None:
        bad = ~np.isfinite(block)
        if not bad.any():
            return
        r, j = (int(i) for i in np.argwhere(bad)[0])  # first bad row, leftmost bad column
        line, fields = self._locate(offset + r)
        col = columns[j]
        text = fields[col] if col < len(fields) else ""
        raise DataError(
            f"{where(self.path, line, self.names[col])}: {describe_value(text)}. {FINITE_FIX}",
            path=self.path, row=line, column=self.names[col],
        )

    def _explain(self, exc: Exception, columns: Sequence[int]) -> DataError:
        """Turn pyarrow's error into a `DataError` that names the line and the cell."""
        message = str(exc)
        if "parse error" in message:
            found = self._first_ragged()
            if found is not None:
                return found
        match = re.search(r"column #(\d+).*invalid value '(.*)'", message, re.S)
        if match is not None:
            found = self._first_text(int(match.group(1)), match.group(2), columns)
            if found is not None:
                return found
        return DataError(f"{self.path} cannot be read as {self.format.upper()}: {message}", path=self.path)

    def _first_ragged(self) -> DataError | None:
        expected = len(self.names)
        for number, text in _lines(self.path):
            fields = _split(text, self.delimiter)
            if number > self.header_line and len(fields) != expected:
                name = SEPARATORS.get(self.delimiter, repr(self.delimiter))
                like = f"the header (line {self.header_line})" if self.header_line else "the first line"
                return DataError(
                    f"{where(self.path, number)}: row has {len(fields)} fields, expected {expected} like "
                    f"{like}. Look for a missing or extra {name}, or a {name} inside a value that needs "
                    "double quotes.", path=self.path, row=number,
                )
        return None

    def _first_text(self, col: int, text: str, columns: Sequence[int]) -> DataError | None:
        for number, line in _lines(self.path):
            if number <= self.header_line:
                continue
            fields = _split(line, self.delimiter)
            cells = [(j, fields[j].strip()) for j in columns if j < len(fields)]
            for j, cell in cells:
                if (j == col and cell == text.strip()) or not (_is_number(cell) or cell in NULL_VALUES):
                    return _text_error(self.path, number, self.names[j], cell, self.delimiter)
        return None


def _text_error(path: Path, line: int, column: str, cell: str, delimiter: str) -> DataError:
    if not cell:  # only spaces
        message = f"{where(path, line, column)}: an empty cell. {FINITE_FIX}"
        return DataError(message, path=path, row=line, column=column)
    hint = ""
    if re.fullmatch(r"[-+]?\d+,\d*", cell):
        hint = " It looks like a decimal comma: write 1.5, not 1,5"
        hint += "." if delimiter == ";" else " (and use delimiter=';' if fields are split by ';')."
    return DataError(
        f"{where(path, line, column)}: the text {cell!r} is in a numeric column.{hint} Fix the cell, or leave "
        "the column out by choosing features=... and targets=... (--features, --targets).",
        path=path, row=line, column=column,
    )


def _check_delimiter(path: Path, line: int, fields: list[str], text: str, delimiter: str) -> None:
    """One column whose text holds another separator: the file was split by the wrong one."""
    if len(fields) != 1:
        return
    counts = {sep: text.count(sep) for sep in SEPARATORS if sep != delimiter}
    sep, count = max(counts.items(), key=lambda item: item[1])
    if count:
        shown = "\\t" if sep == "\t" else sep
        raise DataError(
            f"{where(path, line)} reads as a single column with {delimiter!r} as delimiter, but it contains "
            f"{count} {SEPARATORS[sep]}(s): {text.strip()[:60]!r}. Try delimiter={shown!r} "
            f"(--delimiter '{shown}').", path=path, row=line,
        )
