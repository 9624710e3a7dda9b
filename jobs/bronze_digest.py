"""The bronze layer, as a seed-style entry point: `python jobs/bronze_digest.py [--data-dir DIR] [--config PATH]`."""
import sys

from clickstream.cli import main

if __name__ == "__main__":
    sys.exit(main(["bronze", *sys.argv[1:]]))
