import sys

from aiflow_nb.startup import skip_slow_optional_imports

skip_slow_optional_imports()  # before the engine's imports

from aiflow_nb.server.main import main  # noqa: E402

sys.exit(main())
