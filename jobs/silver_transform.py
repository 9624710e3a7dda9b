"""The silver layer, as a seed-style entry point: `python jobs/silver_transform.py [--data-dir DIR] [--config PATH]`."""
import sys

from clickstream.cli import main

if __name__ == "__main__":
    sys.exit(main(["silver", *sys.argv[1:]]))
