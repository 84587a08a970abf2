import sys

from quacknet.cli import main

sys.exit(main())
