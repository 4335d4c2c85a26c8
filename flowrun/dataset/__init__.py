"""Dataset runs: one flow over every row of a JSONL, JSON or CSV file, under one run id,
in flat memory and inside the run's rate budget (``flowrun run FLOW --dataset FILE``).

Module map: :mod:`.rows` (reading and typing rows), :mod:`.engine` (the window of rows
in flight, results), :mod:`.engines` (the engine seam: local, or Ray in
:mod:`flowrun.ray_engine`), :mod:`.state` (the run store's dataset tables),
:mod:`.progress` (the terminal view), :mod:`.launch` (start and resume from the command
line).
"""

from .engine import DatasetHooks, DatasetResult, DatasetRunner, DatasetSpec
from .rows import DatasetError, Row, read_rows

__all__ = ["DatasetError", "DatasetHooks", "DatasetResult", "DatasetRunner", "DatasetSpec", "Row",
           "read_rows"]
