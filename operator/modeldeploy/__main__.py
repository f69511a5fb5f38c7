"""`python -m modeldeploy` is the same as the `modeldeploy` console script."""

import sys

from modeldeploy.cli import main

sys.exit(main())
