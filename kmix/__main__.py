import sys

from kmix.cli.main import main

sys.exit(main())
