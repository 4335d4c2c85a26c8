"""The tool of compaction.yaml: pages of a made-up manual, long enough that a loop
reading them passes the compaction threshold after a few turns."""

from __future__ import annotations


def read_page(page: int) -> str:
    """One page of the Contoso Desk manual.

    Args:
        page: The page number, from 1.
    """
    words = " ".join(f"word{(page * 31 + i) % 97}" for i in range(300))
    return f"Page {page}: {words}"
