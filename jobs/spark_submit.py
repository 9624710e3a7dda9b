"""The pipeline under spark-submit: the same command line as `clickstream`, with Spark's launcher in front.

    spark-submit --master local[2] jobs/spark_submit.py run --engine spark --data-dir DIR

spark-submit starts the driver, so its --master, --driver-memory and --conf options apply, and config.spark's
master and driver memory do not. Tables are read and published as local files: the data directory must be
on the driver's own disk (local or client mode on one machine).
"""
import sys

from clickstream.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
