"""The analytics layer, as a seed-style entry point: `python jobs/analytics.py [--data-dir DIR] [--config PATH]`."""
import sys

from clickstream.cli import main

if __name__ == "__main__":
    sys.exit(main(["analytics", *sys.argv[1:]]))
