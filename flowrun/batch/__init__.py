"""Batch mode: a dataset run through the Batch API (``flowrun run FLOW --dataset FILE
--batch``), a DAG layer at a time, each round of requests in one batch, at about half
the price of the same requests sent one by one.

Module map: :mod:`.checks` (what cannot be batched), :mod:`.engine` (layers of rows),
:mod:`.rows` (a row's runner and journal), :mod:`.client` (a row's requests become
lines), :mod:`.collector` (rounds become batches: submit, poll, read, re-attach),
:mod:`.lines` (custom ids, JSONL, output lines), :mod:`.service` (the Files and Batches
APIs), :mod:`.state` (the run store's batch tables), :mod:`.settings`, :mod:`.progress`.
"""

from .checks import batch_problems, check_batchable
from .engine import BatchDatasetRunner
from .settings import BatchSettings

__all__ = ["BatchDatasetRunner", "BatchSettings", "batch_problems", "check_batchable"]
