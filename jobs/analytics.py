"""The seed's business queries (top products, funnel, daily activity, segments, revenue, weekday vs weekend)
from the gold tables: `python jobs/analytics.py [--data-dir DIR] [--config PATH]`."""
import sys

from clickstream.cli import main

if __name__ == "__main__":
    sys.exit(main(["analytics", "--group", "basic", *sys.argv[1:]]))
