"""The emulator's Files API, through the real SDK, conforming to the spec."""

from __future__ import annotations

import openai
import pytest

from flowrun.emulator import EmulatorServer
from flowrun.emulator.conformance import validator


def test_upload_retrieve_download_delete_conform():
    with EmulatorServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        created = client.files.create(file=("report.pdf", b"%PDF-1.4 body"), purpose="assistants")
        check = validator("OpenAIFile")
        assert not list(check.iter_errors(created.model_dump(exclude_none=True)))
        assert (created.filename, created.bytes, created.purpose) == ("report.pdf", 13, "assistants")
        assert client.files.content(created.id).content == b"%PDF-1.4 body"
        assert [f.id for f in client.files.list().data] == [created.id]
        client.files.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(created.id)
        with pytest.raises(openai.BadRequestError, match="purpose"):
            client.files.create(file=("x.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]
