import sys

from mmdf.cli import main

sys.exit(main())
