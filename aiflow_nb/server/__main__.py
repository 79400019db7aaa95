import sys

from aiflow_nb.server.main import main

sys.exit(main())
