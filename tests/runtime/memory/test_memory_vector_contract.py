"""The VectorStore contract, run against every backend that runs here (see conftest.BACKENDS)."""

from __future__ import annotations

import numpy as np
import pytest

from agent_runtime.memory import DimensionMismatchError, VectorItem, VectorStore

pytestmark = pytest.mark.anyio

DIM = 8


def axis(i: int, weight: float = 1.0, dim: int = DIM) -> list[float]:
    """A unit-ish vector along axis ``i`` with a little of every other axis, so no two are orthogonal."""
    v = [0.1] * dim
    v[i] = weight
    return v


def item(id_: str, embedding: list[float], **metadata) -> VectorItem:
    return VectorItem(id=id_, embedding=embedding, text=f"text of {id_}", metadata=metadata)


def ids(hits) -> list[str]:
    return [h.id for h in hits]


async def test_query_orders_by_cosine_similarity_with_exact_scores(backend):
    rng = np.random.default_rng(7)
    dim, n = 64, 200
    matrix = rng.normal(size=(n, dim))
    query = rng.normal(size=dim)
    store = await backend.vectors(dim)
    assert isinstance(store, VectorStore)
    await store.upsert("ns", [item(f"v{i}", row.tolist()) for i, row in enumerate(matrix)])

    hits = await store.query("ns", query.tolist(), top_k=10)

    expected = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    best = np.argsort(-expected)[:10]
    assert ids(hits) == [f"v{i}" for i in best]
    np.testing.assert_allclose([h.score for h in hits], expected[best], atol=1e-5)
    assert hits[0].text == f"text of v{best[0]}"


async def test_top_k_bounds_the_result(backend):
    store = await backend.vectors(DIM)
    await store.upsert("ns", [item(f"v{i}", axis(i)) for i in range(5)])
    assert len(await store.query("ns", axis(0), top_k=3)) == 3
    assert len(await store.query("ns", axis(0), top_k=50)) == 5
    assert await store.query("ns", axis(0), top_k=0) == []
    assert (await store.query("ns", axis(0), top_k=1))[0].id == "v0"
    assert await store.query("empty-namespace", axis(0)) == []


async def test_upsert_replaces_by_id_and_last_duplicate_wins(backend):
    store = await backend.vectors(DIM)
    await store.upsert("ns", [item("a", axis(0), v=1), item("b", axis(1))])
    await store.upsert("ns", [VectorItem("a", axis(2), "new text", {"v": 2})])
    await store.upsert("ns", [item("c", axis(3), v=1), item("c", axis(4), v=2)])

    hits = await store.query("ns", axis(2), top_k=10)
    assert sorted(ids(hits)) == ["a", "b", "c"]
    assert (hits[0].id, hits[0].text, hits[0].metadata) == ("a", "new text", {"v": 2})
    assert (await store.query("ns", axis(4), top_k=1))[0].metadata == {"v": 2}


async def test_where_filters_on_exact_metadata_values(backend):
    store = await backend.vectors(DIM)
    await store.upsert(
        "ns",
        [
            item("a", axis(0), kind="note", n=1, flag=True, nothing=None),
            item("b", axis(0, 0.9), kind="note", n=2, flag=False),
            item("c", axis(0, 0.8), kind="fact", n=1, flag=True),
            item("d", axis(0, 0.7), kind="note", n="1", tags=["x", "y"]),
        ],
    )

    async def matching(where) -> list[str]:
        return ids(await store.query("ns", axis(0), top_k=10, where=where))

    assert await matching({"kind": "note"}) == ["a", "b", "d"]
    assert await matching({"kind": "note", "n": 1}) == ["a"]
    assert await matching({"n": 1.0}) == ["a", "c"]
    assert await matching({"flag": True}) == ["a", "c"]
    assert await matching({"n": True}) == []
    assert await matching({"nothing": None}) == ["a"]
    assert await matching({"kind": "missing"}) == []
    assert await matching({}) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="identifier"):
        await matching({"bad key": 1})
    with pytest.raises(TypeError, match="tags"):
        await matching({"tags": ["x"]})


async def test_namespaces_are_isolated(backend):
    store = await backend.vectors(DIM)
    await store.upsert("agent-a", [item("same-id", axis(0), owner="a")])
    await store.upsert("agent-b", [item("same-id", axis(1), owner="b"), item("other", axis(0))])

    assert [(h.id, h.metadata) for h in await store.query("agent-a", axis(1))] == [
        ("same-id", {"owner": "a"})
    ]
    await store.delete("agent-b", ["same-id"])
    assert ids(await store.query("agent-a", axis(0))) == ["same-id"]
    assert ids(await store.query("agent-b", axis(0))) == ["other"]


async def test_delete_removes_ids_and_ignores_unknown_ones(backend):
    store = await backend.vectors(DIM)
    await store.upsert("ns", [item(f"v{i}", axis(i)) for i in range(4)])
    await store.delete("ns", ["v1", "v3", "never-there"])
    await store.delete("ns", [])
    await store.delete("unknown-namespace", ["v0"])
    assert sorted(ids(await store.query("ns", axis(0), top_k=10))) == ["v0", "v2"]


async def test_text_and_metadata_round_trip(backend):
    store = await backend.vectors(DIM)
    metadata = {"source": "Grüße/你好/👋", "page": 3, "score": 0.25, "nested": {"list": [1, "two", None]}}
    await store.upsert("ns", [VectorItem("ü/id?#1", axis(0), "多语言 text — ok", metadata)])
    (hit,) = await store.query("ns", axis(0))
    assert (hit.id, hit.text, hit.metadata) == ("ü/id?#1", "多语言 text — ok", metadata)


async def test_dimension_mismatch_is_a_clear_error_and_writes_nothing(backend):
    store = await backend.vectors(DIM)
    with pytest.raises(DimensionMismatchError, match=f"3 dimensions.*{DIM}-dimensional"):
        await store.upsert("ns", [item("ok", axis(0)), item("bad", [1.0, 2.0, 3.0])])
    with pytest.raises(DimensionMismatchError, match=f"{DIM + 1} dimensions"):
        await store.query("ns", [1.0] * (DIM + 1))
    assert await store.query("ns", axis(0)) == []


async def test_zero_and_non_finite_vectors_are_refused(backend):
    store = await backend.vectors(DIM)
    with pytest.raises(ValueError, match="zero vector"):
        await store.upsert("ns", [item("zero", [0.0] * DIM)])
    with pytest.raises(ValueError, match="NaN"):
        await store.query("ns", [float("nan")] + [1.0] * (DIM - 1))


async def test_another_replica_sees_writes_at_once(backend):
    reader, writer = await backend.vectors(DIM), await backend.vectors(DIM)
    await writer.upsert("ns", [item("a", axis(0))])
    assert ids(await reader.query("ns", axis(0))) == ["a"]  # the reader now holds a cached snapshot
    await writer.upsert("ns", [item("b", axis(1))])
    assert ids(await reader.query("ns", axis(1))) == ["b", "a"]
    await writer.delete("ns", ["b"])
    assert ids(await reader.query("ns", axis(1))) == ["a"]


async def test_reopening_with_other_dimensions_is_refused(backend):
    store = await backend.vectors(DIM)
    await store.upsert("ns", [item("a", axis(0))])
    with pytest.raises(DimensionMismatchError, match=str(DIM)):
        other = await backend.vectors(DIM * 2)  # PostgreSQL refuses here; the others on first read
        await other.query("ns", [1.0] * (DIM * 2))


async def test_close_is_idempotent(backend):
    store = await backend.vectors(DIM)
    await store.close()
    await store.close()


async def test_selective_filters_and_large_top_k_still_return_complete_results(backend):
    """An approximate index must not lose filtered hits: PostgreSQL falls back to an exact search."""
    rng = np.random.default_rng(11)
    dim, n = 16, 1000
    matrix, query = rng.normal(size=(n, dim)), rng.normal(size=dim)
    store = await backend.vectors(dim)
    await store.upsert("ns", [item(f"v{i}", row.tolist(), rare=i % 50 == 0) for i, row in enumerate(matrix)])

    expected = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    rare_best = sorted(range(0, n, 50), key=lambda i: -expected[i])[:5]
    hits = await store.query("ns", query.tolist(), top_k=5, where={"rare": True})
    assert ids(hits) == [f"v{i}" for i in rare_best]

    hits = await store.query("ns", query.tolist(), top_k=60)
    assert len(hits) == 60
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(scores, [expected[int(h.id[1:])] for h in hits], atol=1e-5)
