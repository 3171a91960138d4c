"""``python -m dtd_keras``: the ``dtd-keras`` command line."""

import sys

from dtd_keras.cli import main

if __name__ == "__main__":
    sys.exit(main())
