"""Spark's failure texts as the project's errors: read from the text alone, no Spark needed."""
from __future__ import annotations

from clickstream.engines.base import InputError, QueryInterrupted
from clickstream.engines.spark_errors import translate_failure

HEADER = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome"]


def test_a_malformed_row_spark_does_not_place_is_found_in_the_files_read(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(",".join(HEADER) + "\n1,s,t,e,,,\n", encoding="utf-8")
    second.write_text(",".join(HEADER) + "\n1,s,t,e,,,\n1,1\n", encoding="utf-8")
    text = ("org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows\n"
            "Caused by: org.apache.spark.SparkRuntimeException: [MALFORMED_CSV_RECORD] Malformed CSV record: 1,1")
    assert str(translate_failure(text, [first, second])) == (
        f"CSV error in {second} on line 3: malformed row '1,1' (not the header's number of fields, or broken quoting)")
    assert str(translate_failure(text, [first])).startswith(f"CSV error in {first}: malformed row '1,1'")
    assert str(translate_failure(text, [first, first])).startswith("CSV error in one of the input files:")


def test_a_quote_the_csv_parser_refuses_is_an_input_error_on_every_spark_line(tmp_path):
    # Spark 3.5 names no file when the read feeds a write, and says only what the parser said
    text = ("org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 1.0 failed 1 times, "
            "most recent failure: com.univocity.parsers.common.TextParsingException: com.univocity.parsers.common."
            "TextParsingException - Unescaped quote character '\"' inside quoted value of CSV field. To allow "
            "unescaped quotes, set 'parseUnescapedQuotes' to 'true' in the CSV parser settings.")
    failure = translate_failure(text, [tmp_path / "a.csv", tmp_path / "b.csv"])
    assert isinstance(failure, InputError)
    assert str(failure) == ("CSV error in one of the input files: Unescaped quote character '\"' inside quoted value "
                            "of CSV field")


def test_a_job_cancelled_by_ctrl_c_is_an_interruption_on_every_spark_line():
    # PySpark's SIGINT handler cancels all jobs; Spark 4 says so with its error class, Spark 3.5 without
    for text in ["org.apache.spark.SparkException: [SPARK_JOB_CANCELLED] Job 7 cancelled as part of cancellation of "
                 "all jobs SQLSTATE: XXKDA",
                 "org.apache.spark.SparkException: Job 7 cancelled as part of cancellation of all jobs"]:
        assert isinstance(translate_failure(text, []), QueryInterrupted)
    assert not isinstance(translate_failure("org.apache.spark.SparkException: [SPARK_JOB_CANCELLED] Job 7 cancelled "
                                            "because the stage failed", []), KeyboardInterrupt)
