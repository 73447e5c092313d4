import sys

from zonehost.cli import main

sys.exit(main())
