"""Advanced analytics (user journeys, purchase paths, RFM scores and segments) from the gold tables:
`python jobs/advanced_analytics.py [--data-dir DIR] [--config PATH]`."""
import sys

from clickstream.cli import main

if __name__ == "__main__":
    sys.exit(main(["analytics", "--group", "advanced", *sys.argv[1:]]))
