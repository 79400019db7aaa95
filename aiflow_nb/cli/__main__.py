import sys

from aiflow_nb.cli.main import main

sys.exit(main())
