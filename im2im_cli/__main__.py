"""``python -m im2im_cli`` runs the ``im2im`` command."""

import sys

from im2im_cli.main import main

if __name__ == "__main__":
    sys.exit(main())
