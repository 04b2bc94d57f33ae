"""``python -m cds_service.cli``: the aih-cds command."""

import sys

from cds_service.cli.main import main

sys.exit(main())
