"""strftime formats as the Spark engine reads them (Java patterns and the shapes DuckDB accepts): plain Python."""
from __future__ import annotations

import re

import pytest

from clickstream.engines.spark_formats import strftime_exact_shape, strftime_shape, strftime_to_java


def test_strftime_translation():
    assert strftime_to_java("%Y-%m-%d %H:%M:%S.%f") == "yyyy-MM-dd HH:mm:ss.SSSSSS"  # unchanged default
    assert strftime_to_java("%Y-%m-%dT%H:%M:%S") == "yyyy-MM-dd'T'HH:mm:ss"
    assert strftime_to_java("%Y-%m-%d  %H:%M:%S.%f", lenient_widths=True) == "y-M-d H:m:s.SSSSSS"
    assert strftime_to_java("%Y%m%d %H%M", lenient_widths=True) == "yyyyMMd HHm"  # touching fields keep widths
    assert strftime_shape("%Y-%m-%d %H:%M:%S.%f") == (
        r"^\s*[0-9]{1,4}\-[0-9]{1,2}\-[0-9]{1,2}\s+[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}\.[0-9]{1,6}\s*$")
    with pytest.raises(ValueError, match="%Q is not supported"):
        strftime_shape("%Y-%Q")


def test_exact_shape_is_the_canonical_text_only():
    shape = strftime_exact_shape("%Y-%m-%d %H:%M:%S.%f")
    assert shape == r"^[0-9]{4}\-[0-9]{2}\-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}$"
    assert re.match(shape, "2024-01-05 10:00:00.000001")
    for text in ("2024-1-05 10:00:00.000001", "2024-01-05  10:00:00.000001", " 2024-01-05 10:00:00.000001",
                 "2024-01-05 10:00:00.0001"):
        assert not re.match(shape, text), text
    assert strftime_exact_shape("%d/%m/%Y") == r"^[0-9]{2}/[0-9]{2}/[0-9]{4}$"
    assert strftime_exact_shape("%I:%M %p") is None  # codes beyond Y m d H M S f: the lenient path only
