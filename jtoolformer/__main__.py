"""`python -m jtoolformer …`: the same command line as the `jtoolformer` script."""

import sys

from jtoolformer.cli.main import main

sys.exit(main())
