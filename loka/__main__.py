import sys

from loka.cli import main

sys.exit(main())
