"""pytest runs every notebook here through nbmake (``make test``: ``pytest tests notebooks --nbmake``).

Notebooks read ``REPGRAD_SMALL=1`` for seconds-long settings; their kernels inherit this
process's environment, so it is set here too, for ``pytest notebooks --nbmake`` on its own.
Results are checked by each notebook's last cell (plain ``assert``s).
"""

import os

os.environ.setdefault("REPGRAD_SMALL", "1")
