"""`python -m modeldeploy_dev` is the same as the `modeldeploy-dev` console script."""

import sys

from modeldeploy_dev.cli import main

sys.exit(main())
