import sys

from turbosim_hep.cli import main

sys.exit(main())
