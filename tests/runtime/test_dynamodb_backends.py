"""What the DynamoDB backends do beyond the shared contracts (which they also run, see memory/conftest.py,
tasks/test_task_store_contract.py and the governance tests): the settings that choose them, the errors of a
stage whose tables are missing or wrong, and what only DynamoDB needs (large items, write conflicts, the
ledger's refusals and expiry), all on the session's moto server (dynamodb_support.py).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import subprocess
import sys
import time
import uuid

import pytest
from dynamodb_support import TABLES, DynamoDB

from agent_runtime.errors import ConfigurationError
from agent_runtime.governance.ledger import PENDING, Line, Refusal, Usage, open_ledger
from agent_runtime.governance.ledger_dynamodb import DynamoDBLedger
from agent_runtime.memory import Owner, VectorItem, open_stores
from agent_runtime.memory.dynamodb import DynamoDBConversationStore, DynamoDBVectorStore
from agent_runtime.settings import Settings
from agent_runtime.tasks.factory import check_task_settings, open_task_store
from agent_runtime.tasks.model import TaskRecord, TaskState
from agent_runtime.tasks.store_dynamodb import DynamoDBTaskStore

pytestmark = pytest.mark.anyio

ALICE = Owner("t-a", "alice")
FOREVER = 2**40


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def task(key: str | None = None, **fields: object) -> TaskRecord:
    now = time.time()
    values: dict[str, object] = {
        "id": uuid.uuid4().hex,
        "agent": "payer",
        "messages": [user("hi")],
        "queue": "q",
        "caller": "alice",
        "idempotency_key": key,
        "created_at": now,
        "updated_at": now,
    }
    return TaskRecord.model_validate(values | fields)


# -- choosing DynamoDB ---------------------------------------------------------------------------------------


async def test_the_settings_open_every_store_on_its_own_table(dynamodb: DynamoDB) -> None:
    settings = Settings(
        state_backend="dynamodb",
        vector_backend="dynamodb",
        budget_backend="dynamodb",
        dynamodb_conversations_table=dynamodb.create("conversations"),
        dynamodb_memories_table=dynamodb.create("memories"),
        dynamodb_tasks_table=dynamodb.create("tasks"),
        dynamodb_ledger_table=dynamodb.create("ledger"),
        embedding_dimensions=3,
    )
    check_task_settings(settings)
    conversations, vectors = await open_stores(settings)
    tasks = await open_task_store(settings)
    ledger = await open_ledger(settings)
    try:
        assert isinstance(conversations, DynamoDBConversationStore)
        assert isinstance(vectors, DynamoDBVectorStore)
        assert isinstance(tasks, DynamoDBTaskStore)
        assert isinstance(ledger, DynamoDBLedger)
        await conversations.append(ALICE, "c", [user("hi")])
        await vectors.upsert("ns", [VectorItem("a", [1.0, 0.0, 0.0], "a")])
        assert (await vectors.query("ns", [1.0, 0.0, 0.0]))[0].id == "a"
        assert await ledger.reserve("h", [Line("k", 10, 1, FOREVER)], 60) == [1]
    finally:
        for store in (conversations, vectors, tasks, ledger):
            await store.close()


@pytest.mark.parametrize(
    ("kind", "setting"),
    [
        ("conversations", "dynamodb_conversations_table"),
        ("memories", "dynamodb_memories_table"),
        ("tasks", "dynamodb_tasks_table"),
        ("ledger", "dynamodb_ledger_table"),
    ],
)
async def test_a_missing_table_is_a_configuration_error_and_is_never_created(
    dynamodb: DynamoDB, kind: str, setting: str
) -> None:
    name = f"missing-{kind}-{uuid.uuid4().hex[:8]}"
    settings = Settings(state_backend="dynamodb", vector_backend="dynamodb", budget_backend="dynamodb")
    settings = settings.model_copy(update={setting: name})
    opener = {
        "conversations": lambda: DynamoDBConversationStore.connect(name),
        "memories": lambda: DynamoDBVectorStore.connect(name, 3),
        "tasks": lambda: open_task_store(settings),
        "ledger": lambda: open_ledger(settings),
    }[kind]
    with pytest.raises(
        ConfigurationError, match=f"'{name}' does not exist.*the runtime may not create tables"
    ):
        await opener()
    assert name not in dynamodb.client().list_tables()["TableNames"]


async def test_a_table_without_the_documented_layout_is_refused(dynamodb: DynamoDB) -> None:
    client = dynamodb.client()
    no_index = f"tasks-without-index-{uuid.uuid4().hex[:8]}"
    definition = {key: value for key, value in TABLES["tasks"].items() if key != "GlobalSecondaryIndexes"}
    definition["AttributeDefinitions"] = TABLES["conversations"]["AttributeDefinitions"]
    client.create_table(TableName=no_index, BillingMode="PAY_PER_REQUEST", **definition)
    with pytest.raises(ConfigurationError, match="no global secondary index awaiting_approval"):
        await DynamoDBTaskStore.connect(no_index)
    sorted_ledger = dynamodb.create("conversations")  # pk/sk where the ledger needs pk alone
    with pytest.raises(ConfigurationError, match="does not have the layout"):
        await DynamoDBLedger.connect(sorted_ledger)


async def test_without_a_region_the_error_names_the_setting(
    dynamodb: DynamoDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    with pytest.raises(ConfigurationError, match="AGENTSTAGE_AWS_REGION"):
        await open_ledger(Settings(budget_backend="dynamodb"))


def test_boto3_is_imported_only_when_dynamodb_is_chosen() -> None:
    code = (
        "import sys, agent_runtime.memory.factory, agent_runtime.tasks.factory, agent_runtime.governance.ledger;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- conversations -------------------------------------------------------------------------------------------


async def test_messages_larger_than_an_item_round_trip_and_oversized_ones_are_refused(
    dynamodb: DynamoDB,
) -> None:
    store = await DynamoDBConversationStore.connect(dynamodb.create("conversations"))
    try:
        noise = base64.b64encode(random.randbytes(900_000)).decode()  # ~1.2 MB that barely compresses
        image = {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:;base64," + noise}}],
        }
        await store.append(ALICE, "c", [user("before"), image, user("after")])
        assert await store.history(ALICE, "c") == [user("before"), image, user("after")]
        assert await store.history(ALICE, "c", limit=2) == [image, user("after")]
        assert await store.history(ALICE, "c", limit=1) == [user("after")]

        huge = user(base64.b64encode(random.randbytes(4_000_000)).decode())
        with pytest.raises(ValueError, match="message 1 is .* bytes"):
            await store.append(ALICE, "c", [user("not written either"), huge])
        assert len(await store.history(ALICE, "c")) == 3
        [listed] = await store.conversations(ALICE)
        assert listed.messages == 3
    finally:
        await store.close()


async def test_an_append_longer_than_a_transaction_is_kept_whole_and_in_order(dynamodb: DynamoDB) -> None:
    store = await DynamoDBConversationStore.connect(dynamodb.create("conversations"))
    try:
        await store.append(ALICE, "long", [user(str(i)) for i in range(250)])
        assert [m["content"] for m in await store.history(ALICE, "long")] == [str(i) for i in range(250)]
        assert (await store.conversations(ALICE))[0].messages == 250
        assert await store.delete(ALICE, "long") is True
        assert await store.history(ALICE, "long") == [] and await store.conversations(ALICE) == []
    finally:
        await store.close()


async def test_replicas_appending_through_write_conflicts_never_interleave_or_lose_a_message(
    dynamodb: DynamoDB,
) -> None:
    """Three stores (as three processes) on a table where a fifth of the writes lose a race."""
    table = dynamodb.create("conversations", conflicted=True)
    stores = [await DynamoDBConversationStore.connect(table) for _ in range(3)]
    try:

        async def writer(store: DynamoDBConversationStore, name: str) -> None:
            for i in range(6):
                await store.append(ALICE, "shared", [user(f"{name}:{i}:a"), user(f"{name}:{i}:b")])

        await asyncio.gather(*(writer(store, f"w{n}{k}") for n, store in enumerate(stores) for k in range(3)))
        contents = [m["content"] for m in await stores[0].history(ALICE, "shared")]
        assert len(contents) == 3 * 3 * 6 * 2
        assert all(
            a[:-1] == b[:-1] and (a[-1], b[-1]) == ("a", "b") for a, b in zip(contents[::2], contents[1::2])
        )
        [listed] = await stores[1].conversations(ALICE)
        assert listed.messages == len(contents)
        assert await stores[2].delete_tenant("t-a") == 1
        assert await stores[0].history(ALICE, "shared") == []
    finally:
        for store in stores:
            await store.close()


# -- vectors -------------------------------------------------------------------------------------------------


async def test_a_vector_item_over_the_item_limit_is_refused_before_anything_is_written(
    dynamodb: DynamoDB,
) -> None:
    store = await DynamoDBVectorStore.connect(dynamodb.create("memories"), 3)
    try:
        with pytest.raises(ValueError, match="'big' is .* bytes"):
            await store.upsert(
                "ns", [VectorItem("ok", [1.0, 0, 0], "ok"), VectorItem("big", [1.0, 0, 0], "x" * 500_000)]
            )
        assert await store.query("ns", [1.0, 0, 0]) == []
    finally:
        await store.close()


# -- tasks ---------------------------------------------------------------------------------------------------


async def test_the_reviewers_queue_never_shows_a_task_the_index_still_lists(dynamodb: DynamoDB) -> None:
    """The index lags the table: a task it still lists as parked, but that has moved on, is not shown."""
    table = dynamodb.create("tasks")
    store = await DynamoDBTaskStore.connect(table)
    try:
        parked, _ = await store.create(task())
        parked = await store.replace(
            parked.model_copy(update={"state": TaskState.AWAITING_APPROVAL}), expected_version=0
        )
        moved, _ = await store.create(task())
        moved = await store.replace(moved.model_copy(update={"state": TaskState.RUNNING}), expected_version=0)
        # What a lagging index looks like: the task item still carries the index's key.
        dynamodb.client().update_item(
            TableName=table,
            Key={"pk": {"S": f"task#{moved.id}"}, "sk": {"S": "task"}},
            UpdateExpression="SET awaiting = :a",
            ExpressionAttributeValues={":a": {"S": "awaiting_approval"}},
        )
        assert [t.id for t in await store.awaiting_approval(10)] == [parked.id]
        assert await store.awaiting_approval(0) == []
    finally:
        await store.close()


async def test_large_records_and_racing_submissions_through_write_conflicts(dynamodb: DynamoDB) -> None:
    store = await DynamoDBTaskStore.connect(dynamodb.create("tasks", conflicted=True))
    try:
        big = task(messages=[user("x" * 1_000_000)])
        _, new = await store.create(big)
        assert new and await store.get(big.id) == big
        results = await asyncio.gather(*(store.create(task(key="same")) for _ in range(8)))
        assert sum(new for _, new in results) == 1 and len({t.id for t, _ in results}) == 1
    finally:
        await store.close()


# -- the ledger ----------------------------------------------------------------------------------------------


async def test_a_refusal_names_the_line_without_room_and_holds_nothing(dynamodb: DynamoDB) -> None:
    ledger = await DynamoDBLedger.connect(dynamodb.create("ledger"))
    try:
        a, b, c = (Line(name, 10, 3, FOREVER) for name in "abc")
        assert await ledger.reserve("h1", [a, b, c], 60) == [3, 3, 3]
        assert await ledger.reserve("h2", [a, Line("c", 5, 3, FOREVER), b], 60) == Refusal(1, 0, 3)
        assert await ledger.reserve("h3", [a, Line("never", 2, 3, FOREVER)], 60) == Refusal(1, 0, 0), (
            "a line over its limit is refused even on a counter nobody holds"
        )
        assert await ledger.usage(["a", "b", "c", "never"]) == [Usage(0, 3)] * 3 + [Usage(0, 0)]
    finally:
        await ledger.close()


async def test_racing_multi_counter_holds_through_write_conflicts_stay_exact(dynamodb: DynamoDB) -> None:
    """Four ledgers (as four processes) race 3-counter holds on a table where a fifth of the writes lose."""
    table = dynamodb.create("ledger", conflicted=True)
    ledgers = [await DynamoDBLedger.connect(table) for _ in range(4)]
    try:
        lines = [
            Line("requests", 30, 1, FOREVER),
            Line("tokens", 10**6, 7, FOREVER),
            Line("cost", 10**6, 5, FOREVER),
        ]
        holds = [(ledger, f"h{i}-{n}") for i, ledger in enumerate(ledgers) for n in range(15)]
        results = await asyncio.gather(*(ledger.reserve(hold, lines, 60) for ledger, hold in holds))
        granted = [
            (ledger, hold)
            for (ledger, hold), result in zip(holds, results)
            if not isinstance(result, Refusal)
        ]
        assert len(granted) == 30
        assert sorted(result[0] for result in results if not isinstance(result, Refusal)) == list(
            range(1, 31)
        )
        await asyncio.gather(
            *(ledger.settle(hold, [("requests", 1), ("tokens", 2), ("cost", 3)]) for ledger, hold in granted)
        )
        assert await ledgers[0].usage(["requests", "tokens", "cost"]) == [
            Usage(30, 0),
            Usage(60, 0),
            Usage(90, 0),
        ]
        [item] = [i for i in dynamodb.client().scan(TableName=table)["Items"] if i["key"]["S"] == "tokens"]
        assert (item["settled"], item["committed"]) == ({"N": "60"}, {"N": "60"})
        assert not [name for name in item if name.startswith(("h:", "b:"))], "every hold is gone"
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_a_lapsed_hold_is_folded_into_settled_and_a_late_settlement_changes_nothing(
    dynamodb: DynamoDB,
) -> None:
    table = dynamodb.create("ledger")
    ledger, other = await DynamoDBLedger.connect(table), await DynamoDBLedger.connect(table)
    try:
        assert await ledger.reserve("dead", [Line("k", 10, 4, FOREVER), Line("j", 10, 2, FOREVER)], 0.05) == [
            4,
            2,
        ]
        await asyncio.sleep(0.1)
        assert await other.usage(["k", "j"]) == [Usage(4, 0), Usage(2, 0)]
        [item] = [i for i in dynamodb.client().scan(TableName=table)["Items"] if i["key"]["S"] == "k"]
        assert item["settled"] == {"N": "4"} and not [name for name in item if name.startswith("h:")]
        await ledger.settle("dead", [("k", 1), ("j", 1)])
        assert await other.usage(["k", "j"]) == [Usage(4, 0), Usage(2, 0)]
    finally:
        await ledger.close()
        await other.close()


async def test_a_reservation_whose_caller_is_gone_gives_its_hold_back(dynamodb: DynamoDB) -> None:
    """Cancelled while its write is in flight: the write may still land, and then it is released; close()
    waits for both, so another process sees the room given back."""
    table = dynamodb.create("ledger")
    ledger = await DynamoDBLedger.connect(table)
    try:
        reservation = asyncio.ensure_future(ledger.reserve("gone", [Line("k", 10, 4, FOREVER)], 60))
        await asyncio.sleep(0)
        reservation.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reservation
    finally:
        await ledger.close()
    other = await DynamoDBLedger.connect(table)
    try:
        assert await other.usage(["k"]) == [Usage(0, 0)]
    finally:
        await other.close()


async def test_a_counter_past_its_window_reads_as_empty(dynamodb: DynamoDB) -> None:
    ledger = await DynamoDBLedger.connect(dynamodb.create("ledger"))
    try:
        assert await ledger.reserve("h", [Line("old", 10, 4, time.time() + 0.05)], 60) == [4]
        await asyncio.sleep(0.1)
        assert await ledger.usage(["old"]) == [Usage(0, 0)]
    finally:
        await ledger.close()


async def test_idempotency_records_expire_by_their_own_clock_and_carry_a_ttl(dynamodb: DynamoDB) -> None:
    table = dynamodb.create("ledger", conflicted=True)
    ledger, other = await DynamoDBLedger.connect(table), await DynamoDBLedger.connect(table)
    try:
        assert await ledger.claim("call-1", 60) is None
        assert await other.claim("call-1", 60) == PENDING
        large = "r" * 500_000  # over an item's 400 KB uncompressed
        await ledger.complete("call-1", large, 60)
        assert await other.claim("call-1", 60) == large
        await ledger.release("call-1")
        assert await other.claim("call-1", 60) is None

        assert await ledger.claim("call-2", 0.05) is None
        await asyncio.sleep(0.1)  # expired, though TTL has not deleted it (TTL lags by up to days)
        assert await other.claim("call-2", 60) is None, "an expired record is not trusted"
        items = dynamodb.client().scan(TableName=table)["Items"]
        assert all(int(item["ttl"]["N"]) >= time.time() for item in items), "TTL deletes them later"
    finally:
        await ledger.close()
        await other.close()
