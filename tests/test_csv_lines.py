"""csv_lines: a raw file split into well-formed records (canonical CSV) and malformed lines (number, reason, text)."""
from __future__ import annotations

import gzip
import io
import tracemalloc
from pathlib import Path

import pytest

from clickstream.config import CsvOptions
from clickstream.raw_files import scan
from clickstream.csv_lines import MAX_RECORD_BYTES, SHOWN_BYTES, HeaderTooLong, Malformed, header_record, split_file

HEADER = b"UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
GOOD = b"1,1,2024-01-01 10:00:00,page_view,,,\n"


def split(tmp_path: Path, body: bytes, options: CsvOptions = CsvOptions(), name: str = "f.csv", skip: int | None = None,
          first_line: int = 2) -> tuple[str, list[Malformed], bool]:
    path = tmp_path / name
    data = HEADER + body
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    canonical = io.StringIO()
    result = split_file(path, options, 7, canonical, skip_bytes=len(HEADER) if skip is None else skip,
                        first_line=first_line)
    return canonical.getvalue(), result.malformed, result.ends_cleanly


@pytest.mark.parametrize(("line", "reason"), [
    (b"1,1", "malformed_short_row"),
    (b"1,1,2024-01-01 10:00:00,page_view,,,,extra", "malformed_long_row"),
    (b'1,1,2024-01-01 10:00:00,page_view,"x"y,,', "malformed_quoting"),
    (b"1,1,2024-01-01 10:00:00,page_\xffview,,,", "malformed_invalid_utf8"),
    (b"   ", "malformed_short_row"),
])
def test_a_malformed_line_is_kept_with_its_number_reason_and_text_and_the_rest_proceeds(tmp_path, line, reason):
    canonical, malformed, clean = split(tmp_path, GOOD + line + b"\n" + GOOD.replace(b"10:00", b"11:00"))
    assert canonical == "1,1,2024-01-01 10:00:00,page_view,,,\n1,1,2024-01-01 11:00:00,page_view,,,\n"
    shown = line.decode("utf-8", "backslashreplace") + "\n"
    assert malformed == [Malformed(3, reason, shown)]
    assert clean


def test_a_truncated_last_line_is_refused_alone(tmp_path):
    body = b"".join(GOOD.replace(b"1,1,", f"{i},1,".encode()) for i in range(5)) + b"9,1,2024-01-0"
    canonical, malformed, clean = split(tmp_path, body)
    assert canonical.count("\n") == 5
    assert malformed == [Malformed(7, "malformed_short_row", "9,1,2024-01-0")]
    assert not clean  # no line break at the end: a later append may complete the line


def test_a_quote_left_open_takes_only_its_own_line(tmp_path):
    body = GOOD + b'2,1,2024-01-01 10:00:00,page_view,"open,,\n' + GOOD.replace(b"1,1,", b"3,1,") + \
        GOOD.replace(b"1,1,", b"4,1,")
    canonical, malformed, clean = split(tmp_path, body)
    assert [line.split(",")[0] for line in canonical.splitlines()] == ["1", "3", "4"]
    assert malformed == [Malformed(3, "malformed_unterminated_quote", '2,1,2024-01-01 10:00:00,page_view,"open,,\n')]
    assert clean


def test_a_quote_open_at_the_end_of_the_file_means_it_does_not_end_cleanly(tmp_path):
    _, malformed, clean = split(tmp_path, GOOD + b'2,1,2024-01-01 10:00:00,page_view,"open,,\n')
    assert [m.reason for m in malformed] == ["malformed_unterminated_quote"]
    assert not clean


def test_well_formed_records_are_written_as_canonical_csv(tmp_path):
    body = (b'1,"s ""1""",2024-01-01 10:00:00,page_view,"a,b",,"two\nlines"\r\n'
            b"2,1,2024-01-01 10:00:00,click,x\"y,,\r\n\n"  # CRLF, a quote inside a field, a blank line
            b"3,1,2024-01-01 10:00:00,click,,,,,\n")  # empty fields after the last column are dropped
    canonical, malformed, _ = split(tmp_path, body + b"4,1")
    assert canonical == ('1,"s ""1""",2024-01-01 10:00:00,page_view,"a,b",,"two\nlines"\n'
                         '2,1,2024-01-01 10:00:00,click,"x""y",,\n'
                         "3,1,2024-01-01 10:00:00,click,,,\n")
    assert malformed == [Malformed(7, "malformed_short_row", "4,1")]


def test_lines_ending_in_a_lone_carriage_return_are_lines(tmp_path):
    canonical, malformed, _ = split(tmp_path, GOOD.replace(b"\n", b"\r") + b"1,1\r" + GOOD.replace(b"\n", b"\r"))
    assert canonical.count("\n") == 2
    assert malformed == [Malformed(3, "malformed_short_row", "1,1\r")]


def test_another_delimiter_quote_and_escape_are_the_sources(tmp_path):
    options = CsvOptions(delimiter=";", quote="'", escape="\\")
    canonical, malformed, _ = split(tmp_path, b"1;1;2024-01-01 10:00:00;page_view;'it\\'s;here';;\n1;1\n", options)
    assert canonical == "1,1,2024-01-01 10:00:00,page_view,it's;here,,\n"
    assert malformed == [Malformed(3, "malformed_short_row", "1;1\n")]


def test_without_multiline_a_quoted_line_break_is_malformed(tmp_path):
    _, malformed, _ = split(tmp_path, b'1,1,2024-01-01 10:00:00,page_view,,,"two\nlines"\n',
                            CsvOptions(multiline=False))
    assert [m.reason for m in malformed] == ["malformed_unterminated_quote", "malformed_short_row"]


def test_a_gzip_file_is_read_decompressed(tmp_path):
    canonical, malformed, _ = split(tmp_path, GOOD + b"1,1\n", name="f.csv.gz")
    assert canonical == GOOD.decode()
    assert malformed == [Malformed(3, "malformed_short_row", "1,1\n")]


def test_the_lines_of_an_appended_part_are_numbered_after_the_earlier_ones(tmp_path):
    earlier = HEADER + GOOD * 3
    canonical, malformed, _ = split(tmp_path, GOOD * 3 + GOOD + b"1,1\n", skip=len(earlier), first_line=5)
    assert canonical == GOOD.decode()
    assert malformed == [Malformed(6, "malformed_short_row", "1,1\n")]


def test_a_quote_left_open_before_a_line_of_invalid_utf8_still_takes_only_its_own_line(tmp_path):
    body = GOOD + b'2,1,2024-01-01 10:00:00,page_view,"open,,\n' + b"3,1,2024-01-01 10:00:00,page_\xffview,,,\n" + GOOD
    canonical, malformed, _ = split(tmp_path, body)
    assert canonical == GOOD.decode() * 2
    assert [(m.line, m.reason) for m in malformed] == [(3, "malformed_unterminated_quote"),
                                                      (4, "malformed_invalid_utf8")]


# ---- long fields and records: kept whole up to MAX_RECORD_BYTES, one malformed record beyond it

def row(user: int, product: str = "") -> bytes:
    return f"{user},1,2024-01-01 10:00:00,page_view,{product},,\n".encode()


def test_a_field_longer_than_pythons_csv_limit_is_kept_whole_beside_a_malformed_line(tmp_path):
    long = "p" * 200_000  # Python's csv refuses a field of more than 131,072 characters by default
    canonical, malformed, clean = split(tmp_path, row(1, long) + b"1,1\n" + row(2))
    assert canonical == row(1, long).decode() + row(2).decode()
    assert malformed == [Malformed(3, "malformed_short_row", "1,1\n")]
    assert clean


@pytest.mark.parametrize("name", ["f.csv", "f.csv.gz"])
def test_a_quoted_field_of_two_long_lines_is_one_record(tmp_path, name):
    field = "a" * 100_000 + "\n" + "b" * 100_000
    canonical, malformed, _ = split(tmp_path, row(1) + row(2, f'"{field}"') + b"1,1\n" + row(3), name=name)
    assert canonical == row(1).decode() + row(2, f'"{field}"').decode() + row(3).decode()
    assert malformed == [Malformed(5, "malformed_short_row", "1,1\n")]


def test_a_record_of_exactly_the_limit_is_kept(tmp_path):
    product = "p" * (MAX_RECORD_BYTES - len(row(2)) + 1)  # the line feed is not counted
    canonical, malformed, _ = split(tmp_path, row(1) + row(2, product) + row(3))
    assert canonical == (row(1) + row(2, product) + row(3)).decode()
    assert malformed == []


@pytest.mark.parametrize("name", ["f.csv", "f.csv.gz"])
@pytest.mark.parametrize("record", [
    row(2, "p" * MAX_RECORD_BYTES),  # one line
    row(2, '"' + ("p" * 1000 + "\n") * (MAX_RECORD_BYTES // 1000) + '"'),  # a quoted field of many lines
    row(2, '"' + "p" * MAX_RECORD_BYTES + "\n" + 'q"'),  # a line longer than the limit, its quote closed after it
    row(2, "p" * MAX_RECORD_BYTES).replace(b"\n", b"\r\n"),
])
def test_a_record_longer_than_the_limit_is_one_malformed_record_and_the_rest_proceeds(tmp_path, name, record):
    canonical, malformed, clean = split(tmp_path, row(1) + record + b"1,1\n" + row(3), name=name)
    assert canonical == row(1).decode() + row(3).decode()
    assert malformed == [Malformed(3, "malformed_too_long", record[:SHOWN_BYTES].decode()),
                         Malformed(3 + record.count(b"\n"), "malformed_short_row", "1,1\n")]
    assert clean


def test_a_record_longer_than_the_limit_at_the_end_of_the_file_does_not_end_cleanly(tmp_path):
    canonical, malformed, clean = split(tmp_path, row(1) + b"2,1," + b"p" * MAX_RECORD_BYTES)
    assert canonical == row(1).decode()
    assert malformed == [Malformed(3, "malformed_too_long", ("2,1," + "p" * MAX_RECORD_BYTES)[:SHOWN_BYTES])]
    assert not clean


@pytest.mark.parametrize("name", ["f.csv", "f.csv.gz"])
def test_a_quote_left_open_before_more_than_the_limit_still_takes_only_its_own_line(tmp_path, name):
    rows = b"".join(row(user, "p" * 500) for user in range(3, 3 + 2 * MAX_RECORD_BYTES // 500))
    opened = b'2,1,2024-01-01 10:00:00,page_view,"open,,\n'
    canonical, malformed, clean = split(tmp_path, row(1) + opened + rows + opened + rows, name=name)
    assert canonical == (row(1) + rows + rows).decode()
    count = rows.count(b"\n")
    assert malformed == [Malformed(3, "malformed_unterminated_quote", opened.decode()),
                         Malformed(4 + count, "malformed_unterminated_quote", opened.decode())]
    assert clean


@pytest.mark.parametrize("name", ["f.csv", "f.csv.gz"])
def test_a_line_longer_than_the_limit_opening_a_quote_never_closed_is_refused_alone(tmp_path, name):
    line = row(2, '"' + "p" * MAX_RECORD_BYTES)
    canonical, malformed, clean = split(tmp_path, row(1) + line + row(3) + row(4), name=name)
    assert canonical == (row(1) + row(3) + row(4)).decode()
    assert malformed == [Malformed(3, "malformed_too_long", line[:SHOWN_BYTES].decode())]
    assert clean


def test_one_endless_line_is_read_in_bounded_memory(tmp_path):
    path = tmp_path / "endless.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(HEADER + row(1))
        for _ in range(48):
            handle.write(b"x" * (1 << 20))
    tracemalloc.start()
    try:
        result = split_file(path, CsvOptions(), 7, io.StringIO(), skip_bytes=len(HEADER))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.malformed == [Malformed(3, "malformed_too_long", "x" * SHOWN_BYTES)]
    assert peak < 8 * MAX_RECORD_BYTES  # the line is 48 times the limit


@pytest.mark.parametrize(("data", "header"), [
    (HEADER + row(1), HEADER),
    (b'UserID,"Session\nID",Timestamp\r\n' + row(1), b'UserID,"Session\nID",Timestamp\r\n'),  # a quoted line break
    (b'UserID,"Session\n""ID""\n\n",Timestamp\n', b'UserID,"Session\n""ID""\n\n",Timestamp\n'),
    (b"UserID,SessionID\r" + row(1), b"UserID,SessionID\r"),
    (b"UserID,SessionID", b"UserID,SessionID"),
    (b"", b""),
])
def test_the_header_record_is_its_first_line_and_the_lines_its_quotes_hold(data, header):
    assert header_record(io.BytesIO(data), CsvOptions()) == header


def test_a_header_longer_than_the_limit_is_refused_in_bounded_memory():
    limit = r"^the header \(line 1\) is longer than 1,048,576 bytes, the limit of a record$"
    with pytest.raises(HeaderTooLong, match=limit):
        header_record(io.BytesIO(b"UserID," + b"x" * 3 * MAX_RECORD_BYTES + b"\n"), CsvOptions())


@pytest.mark.parametrize("name", ["f.csv", "f.csv.gz"])
@pytest.mark.parametrize("excess", [0, 1])
@pytest.mark.parametrize("shape", ["line", "crlf", "quoted lines", "last line"])
def test_the_scan_finds_a_record_beyond_the_limit_exactly_where_the_splitter_refuses_one(tmp_path, name, excess,
                                                                                         shape):
    head = row(1).decode()[:-len(",,,\n")]  # a record before its product field
    size = MAX_RECORD_BYTES + excess - (shape == "crlf")  # a CR before the last line feed is counted
    if shape == "quoted lines":
        product = '"' + ("p" * 999 + "\n") * 1000
        product += "p" * (size - len(head) - len(product) - len(',",,')) + '"'
    else:
        product = "p" * (size - len(head) - len(",,,"))
    record = (head + f",{product},,").encode() + {"crlf": b"\r\n", "last line": b""}.get(shape, b"\n")
    assert len(record) - record.endswith(b"\n") == MAX_RECORD_BYTES + excess
    canonical, malformed, _ = split(tmp_path, row(1) + record, name=name)
    path = tmp_path / name
    assert (scan(path).needs_splitting, [m.reason for m in malformed]) == (
        (True, ["malformed_too_long"]) if excess else (False, []))
