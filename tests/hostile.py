"""A raw folder holding every kind of hostile, messy input at once, and what each file must become.

Used by the engine tests (both engines must agree on all of it) and by hand: `python tests/hostile.py DIR`
writes it into DIR/raw and prints the config to run it with.
"""
from __future__ import annotations

import gzip
import sys
from pathlib import Path

HEADER = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"

# File names with every character a glob or a shell or SQL could read as more than a name; each file holds
# its own user's rows only, so each name must ingest exactly its own rows.
NAMES = ["[a].csv", "a.csv", "star*.csv", "q?.csv", "it's.csv", 'say "hi".csv', "semi;colon.csv",
         "with space.csv", "ünïcødé-日本.csv", "new\nline.csv", "back\\slash.csv", "{brace}.csv"]

# A header that closes the quote DuckDB used to put around it and writes a file of its choosing.
ATTACK_HEADER = '"x"" from (select 1 as x); copy (select 42 as pwned) to \'PWNED.csv\'; --",' + HEADER

# Lines a real export can hold, each quarantined with this reason and the rest of its file kept.
MALFORMED = {
    "short_row.csv": ("7,1", "malformed_short_row"),
    "long_row.csv": ("7,1,2024-03-01 10:00:00,page_view,,,,extra", "malformed_long_row"),
    "open_quote.csv": ('7,1,2024-03-01 10:00:00,page_view,"never closed,,', "malformed_unterminated_quote"),
    "stray_quote.csv": ('7,1,2024-03-01 10:00:00,page_view,"x"y,,', "malformed_quoting"),
    "bad_utf8.csv": ("7,1,2024-03-01 10:00:00,page_\udcffview,,,", "malformed_invalid_utf8"),
}

# Values that are hostile to whoever shows them: Markdown, HTML, a terminal.
HOSTILE_PRODUCTS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a|b", "`tick`",
                    "\x1b[31mred\x1b[0m", "line\nbreak", "\u202eevil"]

# Refused alone: not text CSV at all.
REFUSED = {
    "gzipped.csv": "gzip-compressed data; name the file .csv.gz to have it read decompressed",
    "utf16.csv": "UTF-16 text; save it as UTF-8",
    "binary.csv": "binary content (NUL bytes): not text CSV",
}
UNMATCHED = ["EXPORT.CSV", "notes.txt", "sub/x.csv"]

# A second source in Europe/Paris: one wall time the clocks skip (spring forward), one they pass twice.
PARIS_SOURCE = {"name": "paris", "glob": "paris_*.csv", "timezone": "Europe/Paris"}


def rows(user: str, count: int, day: str = "2024-03-01", product: str = "") -> str:
    event = "product_view" if product else "page_view"
    return "".join(f"{user},1,{day} 10:{i:02d}:00,{event},{product},,\n" for i in range(count))


def write(raw: Path) -> dict[str, int]:
    """Write the hostile raw folder; returns the data lines of each file that is ingested."""
    lines: dict[str, int] = {}

    def put(name: str, body: str | bytes, header: str = HEADER) -> None:
        path = raw / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogateescape")
        path.write_bytes(header.encode() + data)

    for index, name in enumerate(NAMES):
        put(name, rows(f"name{index}", index + 1))
        lines[name] = index + 1
    put("attack.csv", "x," + rows("attacker", 1).replace("\n", "") + "\n", header=ATTACK_HEADER)
    lines["attack.csv"] = 1
    put("price_usd.csv", "buyer,1,2024-03-01 10:00:00,purchase,p1,3.50,purchase,3.50\n",
        header=HEADER.rstrip("\n") + ',Price "USD"\n')
    lines["price_usd.csv"] = 1
    for name, (line, _) in MALFORMED.items():
        put(name, rows(name.split(".")[0], 2) + line + "\n" + rows(name.split(".")[0], 1, "2024-03-02"))
        lines[name] = 4
    put("truncated_export.csv", rows("truncated", 5) + "9,1,2024-03-0")  # the last line cut short
    lines["truncated_export.csv"] = 6
    with gzip.open(raw / "compressed.csv.gz", "wb") as handle:
        handle.write((HEADER + rows("gz", 3)).encode())
    lines["compressed.csv.gz"] = 3
    put("hostile_values.csv", "".join(f"hostile,1,2024-03-01 10:{i:02d}:00,product_view,\"{p}\",,\n"
                                      for i, p in enumerate(HOSTILE_PRODUCTS)))
    lines["hostile_values.csv"] = len(HOSTILE_PRODUCTS)
    put("separator.csv", "a\x1fb,c,2024-03-01 10:00:00,page_view,,,\na,b\x1fc,2024-03-01 10:00:00,page_view,,,\n")
    lines["separator.csv"] = 2
    put("implausible.csv", "old,1,1900-01-01 00:00:00,page_view,,,\nfuture,1,2999-12-31 23:59:59,page_view,,,\n"
                           "ok,1,2024-03-01 10:00:00,page_view,,,\n")
    lines["implausible.csv"] = 3
    put("copy_of_a.csv", rows("name1", 2))  # the same content as a.csv (NAMES[1]): skipped as a copy
    put("repeats.csv", rows("repeat", 2) + rows("repeat", 1))  # its first line twice: one in-batch duplicate
    lines["repeats.csv"] = 3
    put("paris_1.csv", "p,1,2024-03-31 02:30:00,page_view,,,\np,1,2024-10-27 02:30:00,page_view,,,\n"
                       "p,1,2024-07-01 12:00:00,page_view,,,\n")
    lines["paris_1.csv"] = 3
    (raw / "gzipped.csv").write_bytes(gzip.compress((HEADER + rows("z", 2)).encode()))
    (raw / "utf16.csv").write_bytes((HEADER + rows("z", 2)).encode("utf-16"))
    (raw / "binary.csv").write_bytes(b"UserID,\x00\x01\x02\x00garbage")
    for name in UNMATCHED:
        put(name, rows("unmatched", 1))
    return lines


if __name__ == "__main__":
    target = Path(sys.argv[1])
    written = write(target / "raw")
    print(f"wrote {len(written)} ingestible files ({sum(written.values())} data lines) under {target / 'raw'}; "
          f"run with a config whose sources are [clickstream, {PARIS_SOURCE}]")
