"""Which files a source's glob names: as pathlib's glob names them, over the files bronze lists."""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from clickstream.raw_files import glob_matches

NAMES = ["a", "b", "a.csv", "b.csv", "ab.csv", "x.csv.gz", "A.CSV", "[x].csv", "sub", "2024-01"]
PARTS = ["*", "**", "?", "a", "sub", "*.csv", "a*", "[ab]*", "[!a]*.csv", "*.csv.gz", "A.*", "[x].csv", "2024-*",
         "", "."]


@settings(max_examples=150, deadline=None)
@given(files=st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join),
                      min_size=1, max_size=6, unique=True),
       pattern=st.lists(st.sampled_from(PARTS), min_size=1, max_size=4).map("/".join))
def test_a_glob_names_the_files_pathlib_names(files, pattern):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for relative in files:
            path = root / relative
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("x")
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                continue  # a name used both as a file and as a folder: the first one stands
        files_now = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        if pattern.strip("/. ") == "" or pattern.startswith("/"):
            return  # the config refuses an empty or absolute glob
        expected = sorted(p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file())
        assert sorted(f for f in files_now if glob_matches(pattern, f)) == expected
