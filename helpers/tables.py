"""Read CSV files the way spreadsheets actually write them.

Excel, LibreOffice and Google Sheets save "CSV" in many dialects: UTF-8 with a
byte-order mark, UTF-16 ("Unicode text"), Windows-1252, semicolons in European
locales, tabs, CRLF line ends, trailing empty rows and columns. Learners should
not have to know any of that, so `read_table` accepts all of them and reports
rows with the numbers the spreadsheet shows (the header is row 1).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from helpers.problems import Problems

DELIMITERS = (",", ";", "\t")
MAX_CELL_CHARS = 20_000
csv.field_size_limit(64 * 1024 * 1024)


def decode_bytes(raw: bytes, name: str, problems: Problems) -> str | None:
    """Decode a file's bytes, trying the encodings spreadsheets use."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw.decode("utf-8-sig")
    if b"\x00" in raw[:4096]:
        problems.error(name, "the file looks binary, not like a CSV text file",
                       "save it from your spreadsheet as 'CSV UTF-8 (comma delimited)'")
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        problems.warn(name, "the file is not UTF-8; read it as Windows-1252 (cp1252)",
                      "save it as 'CSV UTF-8' so accents are read exactly")
        return raw.decode("cp1252", errors="replace")


def sniff_delimiter(header_line: str) -> str:
    """Pick the delimiter that splits the header line into the most cells."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def parse_records(text: str) -> list[list[str]]:
    """Split decoded text into records; quoted cells may span several lines."""
    text = text.lstrip("\ufeff")
    header_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(header_line))
    return [list(record) for record in reader]


def read_table(path: Path, columns: tuple[str, ...], problems: Problems) -> pd.DataFrame | None:
    """Read one task CSV into a frame with the wanted columns plus ``row``.

    Args:
        path: The CSV file.
        columns: Required column names, lower case (e.g. ``("question", "answer")``).
        problems: Where errors and warnings are recorded.

    Returns:
        A frame with the stripped cells of ``columns`` and the spreadsheet row
        number of each record, or None when the file cannot be used at all.
    """
    name = path.name
    text = decode_bytes(path.read_bytes(), name, problems)
    if text is None:
        return None
    try:
        records = parse_records(text)
    except csv.Error as exc:
        problems.error(name, f"the CSV cannot be parsed ({exc})",
                       "open it in a spreadsheet and save it again as CSV")
        return None
    if not records or not any(cell.strip() for cell in records[0]):
        problems.error(name, "the file is empty", f"add a header row with {', '.join(columns)}")
        return None
    return records_to_frame(records, columns, name, problems)


def records_to_frame(records: list[list[str]], columns: tuple[str, ...], name: str,
                     problems: Problems) -> pd.DataFrame | None:
    """Map header names (any case, any padding) to columns; skip blank rows."""
    header = [cell.strip().lower() for cell in records[0]]
    missing = [c for c in columns if c not in header]
    if missing:
        problems.error(name, f"missing column(s) {', '.join(repr(c) for c in missing)}; "
                       f"found {', '.join(repr(h) for h in header if h) or 'none'}",
                       f"the first row must be the header: {','.join(columns)}", row=1)
        return None
    index = {c: header.index(c) for c in columns}
    rows = []
    for number, record in enumerate(records[1:], start=2):
        cells = [record[index[c]].strip() if index[c] < len(record) else "" for c in columns]
        if any(cell.strip() for cell in record):
            rows.append([number, *cells])
    if not rows:
        problems.error(name, "the file has a header but no data rows", "add at least one row")
        return None
    return pd.DataFrame(rows, columns=["row", *columns])
