"""Python functions for starter.yaml: a step calls ``word_facts``, the model may call
``rhymes`` as a tool. Plain, deterministic functions, so the flow's tests run offline."""

from __future__ import annotations


def word_facts(word: str) -> dict[str, object]:
    """Facts about a word: its length and its vowels."""
    vowels = sorted({c for c in word.lower() if c in "aeiou"})
    return {"word": word, "letters": len(word), "vowels": vowels}


def rhymes(word: str) -> list[str]:
    """Words that rhyme with ``word`` (made up: the same ending, other starts).

    Args:
        word: The word to rhyme with.
    """
    tail = word.lower()[-3:]
    return [start + tail for start in ("b", "st", "gr")]
