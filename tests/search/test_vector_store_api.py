"""The emulator's Vector stores API, driven by the real openai SDK over HTTP: every answer
conforms to the spec's schemas, files are really chunked and indexed, processing takes
time, search ranks with bm25 and honours attribute filters."""

from __future__ import annotations

import time

import openai
import pytest
from flowkit import assert_conforms

from flowrun.emulator.vector_stores import PROCESSING_S

PAGES = {
    "leave.md": "# Leave\n\nNew employees get 25 days of paid vacation per year. Sick leave is separate.",
    "laptops.md": "# Laptops\n\nLaptops are replaced every three years. Return yours on your last day.",
    "hotels.md": "# Hotels\n\nHotel rooms may cost up to 180 euros a night while travelling.",
}
ATTRS = {"leave.md": {"dept": "hr", "year": 2024, "public": True},
         "laptops.md": {"dept": "it", "year": 2026, "public": False},
         "hotels.md": {"dept": "finance", "year": 2025, "public": True}}



def _ready(client, store_id, batch_id):
    deadline = time.time() + 5
    while True:
        batch = client.vector_stores.file_batches.retrieve(batch_id, vector_store_id=store_id)
        if batch.status != "in_progress" or time.time() > deadline:
            return batch
        time.sleep(0.02)


@pytest.fixture
def store(client):
    ids = {}
    for name, text in PAGES.items():
        ids[name] = client.files.create(file=(name, text.encode()), purpose="assistants").id
    vs = client.vector_stores.create(name="handbook", expires_after={"anchor": "last_active_at", "days": 2})
    batch = client.vector_stores.file_batches.create(
        vs.id, files=[{"file_id": ids[n], "attributes": ATTRS[n]} for n in PAGES])
    _ready(client, vs.id, batch.id)
    return vs.id, ids


def test_lifecycle_answers_conform_and_processing_takes_time(client):
    fid = client.files.create(file=("a.md", b"alpha beta gamma"), purpose="assistants").id
    raw = client.post("/vector_stores", cast_to=object, body={"name": "s", "metadata": {"k": "v"},
                                                              "expires_after": {"anchor": "last_active_at", "days": 1}})
    assert_conforms("VectorStoreObject", raw)
    assert raw["expires_at"] == raw["last_active_at"] + 86400 and raw["status"] == "completed"
    batch = client.post(f"/vector_stores/{raw['id']}/file_batches", cast_to=object, body={"file_ids": [fid]})
    assert_conforms("VectorStoreFileBatchObject", batch)
    assert batch["status"] == "in_progress" and batch["file_counts"]["in_progress"] == 1
    assert client.vector_stores.retrieve(raw["id"]).status == "in_progress"
    time.sleep(PROCESSING_S + 0.05)
    done = client.get(f"/vector_stores/{raw['id']}/file_batches/{batch['id']}", cast_to=object)
    assert done["status"] == "completed" and done["file_counts"] == {
        "in_progress": 0, "completed": 1, "failed": 0, "cancelled": 0, "total": 1}
    files = client.get(f"/vector_stores/{raw['id']}/files", cast_to=object)
    assert_conforms("ListVectorStoreFilesResponse", files)
    assert_conforms("VectorStoreFileObject", files["data"][0])
    assert files["data"][0]["chunking_strategy"] == {"type": "static", "static": {
        "max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
    listing = client.get("/vector_stores", cast_to=object)
    assert_conforms("ListVectorStoresResponse", listing)
    updated = client.post(f"/vector_stores/{raw['id']}", cast_to=object, body={"name": "renamed"})
    assert_conforms("VectorStoreObject", updated)
    assert updated["name"] == "renamed"
    content = client.get(f"/vector_stores/{raw['id']}/files/{fid}/content", cast_to=object)
    assert_conforms("VectorStoreFileContentResponse", content)
    assert content["data"][0]["text"] == "alpha beta gamma"
    removed = client.delete(f"/vector_stores/{raw['id']}/files/{fid}", cast_to=object)
    assert_conforms("DeleteVectorStoreFileResponse", removed)
    deleted = client.delete(f"/vector_stores/{raw['id']}", cast_to=object)
    assert_conforms("DeleteVectorStoreResponse", deleted)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(raw["id"])


def test_search_ranks_the_answering_file_first(client, store):
    store_id, ids = store
    page = client.post(f"/vector_stores/{store_id}/search", cast_to=object,
                       body={"query": "How many vacation days do I get?", "rewrite_query": True})
    assert_conforms("VectorStoreSearchResultsPage", page)
    assert page["data"][0]["filename"] == "leave.md" and page["data"][0]["file_id"] == ids["leave.md"]
    assert page["data"][0]["attributes"] == ATTRS["leave.md"]
    assert "25 days of paid vacation" in page["data"][0]["content"][0]["text"]
    assert page["search_query"] == ["many vacation days get"]
    assert [r["filename"] for r in client.post(f"/vector_stores/{store_id}/search", cast_to=object,
                                              body={"query": "laptop replaced"})["data"]] == ["laptops.md"]


@pytest.mark.parametrize("rule, expected", [
    ({"type": "eq", "key": "dept", "value": "it"}, ["laptops.md"]),
    ({"type": "ne", "key": "dept", "value": "it"}, ["hotels.md", "leave.md"]),
    ({"type": "gte", "key": "year", "value": 2025}, ["hotels.md", "laptops.md"]),
    ({"type": "lt", "key": "year", "value": 2025}, ["leave.md"]),
    ({"type": "in", "key": "dept", "value": ["hr", "finance"]}, ["hotels.md", "leave.md"]),
    ({"type": "nin", "key": "dept", "value": ["hr", "finance"]}, ["laptops.md"]),
    ({"type": "eq", "key": "missing", "value": "x"}, []),
    ({"type": "and", "filters": [{"type": "eq", "key": "public", "value": True},
                                 {"type": "gt", "key": "year", "value": 2024}]}, ["hotels.md"]),
    ({"type": "or", "filters": [{"type": "eq", "key": "dept", "value": "it"},
                                {"type": "and", "filters": [{"type": "eq", "key": "public", "value": True},
                                                            {"type": "lte", "key": "year", "value": 2024}]}]},
     ["laptops.md", "leave.md"]),
])
def test_attribute_filters(client, store, rule, expected):
    store_id, _ = store
    # a query every page matches, so only the filter decides
    page = client.vector_stores.search(store_id, query="leave laptops hotel", filters=rule, max_num_results=10)
    assert sorted(r.filename for r in page.data) == expected


def test_max_results_and_score_threshold(client, store):
    store_id, _ = store
    every = client.vector_stores.search(store_id, query="leave laptops hotel").data
    assert len(every) == 3 and [r.score for r in every] == sorted((r.score for r in every), reverse=True)
    assert len(client.vector_stores.search(store_id, query="leave laptops hotel", max_num_results=1).data) == 1
    # "day" is in laptops.md too (porter stemming), but it has half the query's words
    loose = client.vector_stores.search(store_id, query="vacation days").data
    assert [r.filename for r in loose] == ["leave.md", "laptops.md"]
    high = client.vector_stores.search(store_id, query="vacation days",
                                       ranking_options={"score_threshold": 0.6}).data
    assert [r.filename for r in high] == ["leave.md"] and high[0].score >= 0.6


def test_static_chunking_splits_with_overlap(client):
    words = " ".join(f"w{i}" for i in range(300))
    fid = client.files.create(file=("long.txt", words.encode()), purpose="assistants").id
    vs = client.vector_stores.create(name="chunks")
    client.vector_stores.files.create(vs.id, file_id=fid, chunking_strategy={
        "type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}})
    time.sleep(PROCESSING_S + 0.05)
    hits = client.vector_stores.search(vs.id, query="w120", max_num_results=10).data
    texts = [h.content[0].text for h in hits]
    # 100-token windows every 50 tokens: w120 is in the windows starting at w50 and w100
    assert sorted(t.split()[0] for t in texts) == ["w100", "w50"]
    assert all(len(t.split()) == 100 for t in texts)


def test_unreadable_file_fails_with_last_error(client):
    good = client.files.create(file=("ok.md", b"fine text"), purpose="assistants").id
    bad = client.files.create(file=("blob.bin", b"\x00\x01\x02binary"), purpose="assistants").id
    vs = client.vector_stores.create(name="mixed")
    batch = client.vector_stores.file_batches.create(vs.id, file_ids=[good, bad])
    batch = _ready(client, vs.id, batch.id)
    assert batch.status == "completed" and batch.file_counts.failed == 1 and batch.file_counts.completed == 1
    failed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id, filter="failed").data
    assert [f.id for f in failed] == [bad] and failed[0].last_error.code == "unsupported_file"


def test_bad_requests_are_400_naming_the_field_and_unknown_ids_404(client, store):
    store_id, _ = store
    with pytest.raises(openai.BadRequestError) as exc:
        client.post(f"/vector_stores/{store_id}/search", cast_to=object, body={"query": "x", "max_num_results": 99})
    assert "max_num_results" in str(exc.value)
    with pytest.raises(openai.BadRequestError) as exc:
        client.post("/vector_stores", cast_to=object, body={"nmae": "typo"})
    assert "nmae" in str(exc.value)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.create(store_id, file_ids=["file-nope"])
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.search("vs_missing", query="x")


def test_served_under_the_azure_prefix_too(emu):
    with emu.sdk(azure=True) as azure:
        vs = azure.vector_stores.create(name="az")
        assert azure.vector_stores.retrieve(vs.id).name == "az"
    assert any(p.startswith("/openai/v1/vector_stores") for p in emu.paths("POST"))
