"""Functions the custom-tool tests call."""


def set_version(text: str) -> str:
    return f"version set to {text}"


def count_words(text: str) -> dict:
    return {"words": len(text.split())}


def broken(text: str) -> str:
    raise RuntimeError("no such release")
