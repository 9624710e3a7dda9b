import sys

from clickstream.cli import main

sys.exit(main())
