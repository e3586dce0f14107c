"""``python -m resnet_lib.reproduce`` (and ``torchrun ... -m resnet_lib.reproduce``)."""

import sys

from resnet_lib.reproduce.cli import main

sys.exit(main())
