"""Read CSV files the way spreadsheets actually write them, and nothing that is not one.

Excel, LibreOffice and Google Sheets save "CSV" in many dialects: UTF-8 with a
byte-order mark, UTF-16 ("Unicode text"), Windows-1252, semicolons in European
locales, tabs, CRLF or CR-only line ends, trailing empty rows and columns.
Learners should not have to know any of that, so `read_table` accepts all of
them and reports rows with the numbers the spreadsheet shows (the header is row 1).

What is not a spreadsheet's file is refused before it can hurt: folders, named
pipes and devices (a pipe would block forever), dangling links, files over a size
limit, binary data anywhere in the file, undecodable bytes.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import unicodedata
from pathlib import Path

import pandas as pd

from helpers.limits import MAX_CELL_CHARS, MAX_CSV_BYTES
from helpers.problems import Problems, shorten

__all__ = ["MAX_CELL_CHARS", "decode_bytes", "label_key", "read_bytes", "read_records", "read_table"]

DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # never in text a spreadsheet writes
INVISIBLE = re.compile(r"[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
END = "\ue000end-of-file\ue000"  # a private-use sentinel: still inside a cell at the end means an open quote
RESAVE = "save it from your spreadsheet as 'CSV UTF-8 (comma delimited)'"
csv.field_size_limit(MAX_CSV_BYTES)


def label_key(label: str) -> str:
    """The key two spellings of one class share: Unicode-normalised (NFKC), invisible
    characters removed, spaces collapsed, case folded. Labels and class names use the
    same key, so a name written with two spaces matches a label written the same way."""
    text = INVISIBLE.sub("", unicodedata.normalize("NFKC", label))
    return " ".join(text.split()).casefold()


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words a learner knows."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def check_link(path: Path, root: Path | None, problems: Problems) -> bool:
    """Whether a link may be followed: not when it dangles. A link out of the task folder is
    followed with a warning (data tools such as DVC and git-annex keep files elsewhere and
    link them in), since copying the folder would not copy that file."""
    target = path.resolve()
    if not target.exists():
        problems.error(path.name, f"is a link to {shorten(str(target))}, which does not exist",
                       "copy the file itself into the task folder")
        return False
    if root is not None and not target.is_relative_to(root.resolve()):
        problems.warn(path.name, f"is a link to {shorten(str(target))}, outside the task folder",
                      "copy the file in if you will share or archive the folder: the link does not carry it")
    return True


def read_bytes(path: Path, limit: int, problems: Problems, root: Path | None = None) -> bytes | None:
    """A regular file's bytes, at most `limit` of them; anything else is a recorded error.

    The file is opened non-blocking and checked on the open descriptor, so a named
    pipe is refused instead of waiting for a writer, and a file swapped between the
    check and the read is still the one checked.
    """
    name = path.name
    if path.is_symlink() and not check_link(path, root, problems):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        problems.error(name, f"cannot be opened ({exc.strerror})", "check the file exists and you may read it")
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        problems.error(name, f"is {file_kind(info.st_mode)}, not a regular file",
                       "put a plain file saved from your spreadsheet or editor in its place")
        return None
    size = info.st_size
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        problems.error(name, f"is {file_size(max(size, len(data)))}, over the limit of {file_size(limit)}",
                       "split it into smaller files or keep fewer rows")
        return None
    return data


def file_size(n: int) -> str:
    """'256 MB' or '1,000 bytes'."""
    return f"{n / 1024**2:,.0f} MB" if n >= 1024**2 else f"{n:,} bytes"


def line_of(text: str, index: int) -> int:
    """1-based line number of a character position (any line ending)."""
    return len(re.findall(r"\r\n|\r|\n", text[:index])) + 1


def decode_bytes(raw: bytes, name: str, problems: Problems) -> str | None:
    """Decode a file's bytes, trying the encodings spreadsheets use; refuse binary data."""
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = raw.decode("utf-16")
        elif raw.startswith(b"\xef\xbb\xbf"):
            text = raw.decode("utf-8-sig")
        elif b"\x00" in raw:
            text = raw.decode("latin-1")  # only to find the line of the binary byte below
        else:
            text = decode_plain(raw, name, problems)
    except UnicodeDecodeError as exc:
        encoding = "UTF-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "UTF-8"
        problems.error(name, f"the file is marked as {encoding} (byte-order mark) but bytes at position "
                       f"{exc.start:,} are not valid {encoding} ({exc.reason}); the file may be cut short "
                       "or mixed from two encodings", RESAVE)
        return None
    if bad := CONTROL.search(text):
        problems.error(name, f"the file holds binary data (byte 0x{ord(bad.group()):02x} at line "
                       f"{line_of(text, bad.start()):,}), not text", RESAVE, row=None)
        return None
    return text


def decode_plain(raw: bytes, name: str, problems: Problems) -> str:
    """UTF-8, or Windows-1252 with a warning (what Excel writes as plain 'CSV')."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        problems.warn(name, "the file is not UTF-8; read it as Windows-1252 (cp1252)",
                      "save it as 'CSV UTF-8' so accents are read exactly")
        return raw.decode("cp1252", errors="replace")


def sniff_delimiter(header_line: str, columns: tuple[str, ...]) -> str:
    """The delimiter that splits the header into one of the wanted columns, else the most frequent.

    Counting alone fails when texts hold semicolons and the header line cannot be
    told apart (CR-only line ends), so the known column names decide first.
    """
    for delimiter in DELIMITERS:
        if set(columns) & {cell.strip().lower() for cell in header_line.split(delimiter)}:
            return delimiter
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def parse_records(text: str, columns: tuple[str, ...] = ()) -> tuple[list[list[str]], str, bool]:
    """Split decoded text into records; quoted cells may span several lines.

    Returns the records, the delimiter, and whether the file ended inside a quoted
    cell (a quote opened and never closed swallows everything after it into one cell).
    """
    text = text.lstrip("\ufeff")
    delimiter = sniff_delimiter(re.split(r"\r\n|\r|\n", text, maxsplit=1)[0], columns)
    records = [list(r) for r in csv.reader(io.StringIO(text + "\n" + END, newline=""), delimiter=delimiter)]
    unclosed = bool(records) and records[-1] != [END]
    if unclosed:
        records[-1][-1] = records[-1][-1].removesuffix(END).rstrip("\n")
    else:
        records.pop()
    return records, delimiter, unclosed


def read_table(path: Path, columns: tuple[str, ...], problems: Problems, root: Path | None = None,
               labels: list[str] = ()) -> pd.DataFrame | None:
    """Read one task CSV into a frame with the wanted columns plus ``row``.

    Args:
        path: The CSV file.
        columns: Required column names, lower case (e.g. ``("question", "answer")``).
        problems: Where errors and warnings are recorded.
        root: The task folder; a link to a file outside it is refused.
        labels: Class names, when the file has an ``answer`` column; used to spot rows
            swallowed by an unclosed quote.

    Returns:
        A frame with the stripped cells of ``columns`` and the spreadsheet row
        number of each record, or None when the file cannot be used at all.
        Rows with a broken structure are reported and left out.
    """
    name = path.name
    raw = read_bytes(path, MAX_CSV_BYTES, problems, root)
    text = None if raw is None else decode_bytes(raw, name, problems)
    if text is None:
        return None
    found = read_records(text, columns, name, problems)
    if found is None:
        return None
    records, delimiter = found
    return records_to_frame(records, columns, name, problems, delimiter, labels)


def read_records(text: str, columns: tuple[str, ...], name: str,
                 problems: Problems) -> tuple[list[list[str]], str] | None:
    """Records and delimiter of a decoded CSV whose header names one of `columns`; an empty
    file is an error, and a record left open by an unclosed quote is reported and dropped."""
    records, delimiter, unclosed = parse_records(text, columns)
    if not records or not any(cell.strip() for cell in records[0]):
        problems.error(name, "the file is empty", f"add a header row with {', '.join(columns)}")
        return None
    if unclosed:
        header = [cell.strip().lower() for cell in records[0]]
        problems.error(name, "a quote (\") opened in this row is never closed, so every line after it was "
                       "read as one cell", "add the closing quote at the end of the text, or remove the stray "
                       "quote", row=len(records), column=next((c for c in columns if c in header), None))
        records = records[:-1]
    return records, delimiter


def header_index(header: list[str], columns: tuple[str, ...], name: str, problems: Problems) -> dict | None:
    """Position of each wanted column; missing or repeated columns are errors on row 1."""
    missing = [c for c in columns if c not in header]
    if missing:
        problems.error(name, f"missing column(s) {', '.join(repr(c) for c in missing)}; "
                       f"found {', '.join(repr(shorten(h, 40)) for h in header[:10] if h) or 'none'}",
                       f"the first row must be the header: {','.join(columns)}", row=1)
        return None
    repeated = [c for c in columns if header.count(c) > 1]
    if repeated:
        problems.error(name, f"column '{repeated[0]}' appears {header.count(repeated[0])} times in the header",
                       "keep one column of that name and rename or delete the others", row=1,
                       column=repeated[0])
        return None
    return {c: header.index(c) for c in columns}


def records_to_frame(records: list[list[str]], columns: tuple[str, ...], name: str, problems: Problems,
                     delimiter: str = ",", labels: list[str] = ()) -> pd.DataFrame | None:
    """Map header names (any case, any padding) to columns; skip blank and broken rows."""
    header = [cell.strip().lower() for cell in records[0]]
    index = header_index(header, columns, name, problems)
    if index is None:
        return None
    named = [i for i, h in enumerate(header) if h]
    swallowed = swallowed_row(labels)
    rows = []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        extra = [cell for i, cell in enumerate(record) if i not in named and cell.strip()]
        cells = [record[index[c]].strip() if index[c] < len(record) else "" for c in columns]
        if extra:
            problems.error(name, f"{len(named) + len(extra)} cells where {len(named)} were expected "
                           f"(a {DELIMITER_NAMES[delimiter]} inside the text, not in quotes?)",
                           "put the text in double quotes, or remove the extra delimiter", row=number,
                           value=" | ".join(record))
        elif line := swallowed(cells[0]):
            problems.error(name, "a quote (\") opened in this row closes only several lines later, so the rows "
                           f"in between were read as part of this text (one line ends with '{shorten(line, 40)}')",
                           "close the quote at the end of the text, or remove the stray quote", row=number,
                           column=columns[0])
        else:
            rows.append([number, *cells])
    if not rows:
        problems.error(name, "the file has a header but no usable data rows", "add at least one row")
        return None
    return pd.DataFrame(rows, columns=["row", *columns])


def swallowed_row(labels: list[str]):
    """A test for cells that hold whole rows: an inner line ending in ',<class name>'."""
    keys = {label_key(label) for label in labels}
    pattern = re.compile(r"[,;\t]\s*\"?([^,;\t\"]+?)\"?\s*$")

    def find(cell: str) -> str | None:
        for line in cell.splitlines()[:-1] if keys else []:
            match = pattern.search(line)
            if match and label_key(match.group(1)) in keys:
                return line.strip()
        return None
    return find
