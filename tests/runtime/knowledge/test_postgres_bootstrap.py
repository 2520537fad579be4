"""The knowledge database's bootstrap on a stand-in for Aurora (``iam_database``): a writer that owns and
fills the index, a reader that searches it and can change nothing, a reader runtime that creates nothing;
and the Lambda host, reading the master user's secret from a moto server."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import psycopg
import pytest
from contract import DIMENSIONS, ask, document
from iam_database import Cluster, as_user, cluster, password_signin
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from servers import MotoServer

from agent_runtime.knowledge import postgres_bootstrap
from agent_runtime.knowledge.postgres import KnowledgeTablesMissing, PostgresKnowledgeIndex
from agent_runtime.knowledge.postgres_bootstrap import BootstrapError, bootstrap
from agent_runtime.memory import DimensionMismatchError

RUNTIME = Path(__file__).resolve().parents[3] / "runtime"


@pytest.fixture(scope="module")
def signin(postgres_dsn: str) -> Iterator[None]:
    with password_signin(postgres_dsn):
        yield


@pytest.fixture
def db(postgres_dsn: str, signin: None) -> Iterator[Cluster]:
    with cluster(postgres_dsn) as prepared:
        yield prepared


async def run_bootstrap(db: Cluster, **options: Any) -> postgres_bootstrap.BootstrapReport:
    async with await psycopg.AsyncConnection.connect(db.master_dsn, autocommit=True) as conn:
        return await bootstrap(conn, db.schema, db.writer, db.reader, **options)


def catalog(db: Cluster, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.admin_dsn) as admin:
        return admin.execute(query, params).fetchall()


@pytest.mark.anyio
async def test_twice_leaves_a_writer_that_fills_the_index_and_a_reader_that_only_searches(
    db: Cluster,
) -> None:
    first = await run_bootstrap(db)
    again = await run_bootstrap(db)
    assert first.created_roles == [db.writer, db.reader] and again.created_roles == []
    assert catalog(
        db,
        "SELECT r.rolname, r.rolcanlogin, pg_has_role(r.rolname, 'rds_iam', 'MEMBER') FROM pg_roles r"
        " WHERE r.rolname IN (%s, %s) ORDER BY r.rolname = %s DESC",
        db.writer,
        db.reader,
        db.writer,
    ) == [(db.writer, True, True), (db.reader, True, True)]
    writer_dsn = db.give_password(db.writer, "writer-password")
    reader_dsn = db.give_password(db.reader, "reader-password")

    writer = await PostgresKnowledgeIndex.connect(
        as_user(writer_dsn, db.writer, "writer-password"), DIMENSIONS, schema=db.schema
    )
    reader = await PostgresKnowledgeIndex.connect(
        as_user(reader_dsn, db.reader, "reader-password"), DIMENSIONS, schema=db.schema, manage_index=False
    )
    try:
        await writer.replace_document("handbook", document("handbook", ["the zyzzyva policy applies"]))
        found = await reader.search(ask("zyzzyva"))
        assert [(p.document_id, p.text) for p in found] == [("handbook", "the zyzzyva policy applies")]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await reader.replace_document("forged", document("forged", ["zyzzyva forged"]))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await reader.delete_document("handbook")
        assert [p.document_id for p in await reader.search(ask("zyzzyva"))] == ["handbook"]
    finally:
        await writer.close()
        await reader.close()
    owners = catalog(
        db,
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = %s::regnamespace",
        db.schema,
    )
    assert owners == [(db.writer,)], "the writer owns every table and index it created"


@pytest.mark.anyio
async def test_with_dimensions_the_tables_are_the_writers_and_agents_can_search_at_once(db: Cluster) -> None:
    report = await run_bootstrap(db, dimensions=DIMENSIONS)
    assert report.dimensions == DIMENSIONS
    assert catalog(
        db,
        "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
        " WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r' ORDER BY c.relname",
        db.schema,
    ) == [("knowledge_chunks", db.writer), ("knowledge_documents", db.writer)]
    reader_dsn = as_user(db.give_password(db.reader, "reader-password"), db.reader, "reader-password")
    reader = await PostgresKnowledgeIndex.connect(
        reader_dsn, DIMENSIONS, schema=db.schema, manage_index=False
    )
    try:
        assert await reader.search(ask("anything")) == []
    finally:
        await reader.close()
    with pytest.raises(DimensionMismatchError, match=f"holds {DIMENSIONS}-dimensional vectors"):
        await run_bootstrap(db, dimensions=DIMENSIONS * 2)


@pytest.mark.anyio
async def test_a_reader_runtime_refuses_missing_tables_naming_the_ingestion_worker(db: Cluster) -> None:
    await run_bootstrap(db)
    reader_dsn = as_user(db.give_password(db.reader, "reader-password"), db.reader, "reader-password")
    with pytest.raises(KnowledgeTablesMissing) as refused:
        await PostgresKnowledgeIndex.connect(reader_dsn, DIMENSIONS, schema=db.schema, manage_index=False)
    message = str(refused.value)
    assert f"no table {db.schema}.knowledge_chunks, {db.schema}.knowledge_documents" in message
    assert "the ingestion worker creates the tables" in message
    assert "AGENTSTAGE_KNOWLEDGE_MANAGE_INDEX=true" in message
    assert catalog(db, "SELECT count(*) FROM pg_class WHERE relnamespace = %s::regnamespace", db.schema) == [
        (0,)
    ], "the reader created nothing"


@pytest.mark.anyio
async def test_a_reader_without_select_is_told_to_run_the_bootstrap_again(db: Cluster) -> None:
    await run_bootstrap(db, dimensions=DIMENSIONS)
    with psycopg.connect(db.admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("REVOKE SELECT ON {} FROM {}").format(
                sql.Identifier(db.schema, "knowledge_documents"), sql.Identifier(db.reader)
            )
        )
    with pytest.raises(KnowledgeTablesMissing, match=f"database user {db.reader} may not read"):
        await PostgresKnowledgeIndex.connect(
            as_user(db.admin_dsn, db.reader), DIMENSIONS, schema=db.schema, manage_index=False
        )
    await run_bootstrap(db)
    index = await PostgresKnowledgeIndex.connect(
        as_user(db.admin_dsn, db.reader), DIMENSIONS, schema=db.schema, manage_index=False
    )
    await index.close()


@pytest.mark.anyio
async def test_a_server_without_rds_iam_is_refused_and_left_as_it_was(
    db: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_bootstrap, "IAM_ROLE", "rds_iam_of_no_server")
    with pytest.raises(BootstrapError, match="role rds_iam_of_no_server does not exist: this server is not"):
        await run_bootstrap(db)
    assert catalog(db, "SELECT 1 FROM pg_roles WHERE rolname IN (%s, %s)", db.writer, db.reader) == []


@pytest.mark.anyio
async def test_a_schema_of_another_owner_is_not_taken(db: Cluster) -> None:
    with psycopg.connect(db.admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(db.schema)))
    with pytest.raises(BootstrapError, match=f"schema {db.schema} exists and belongs to postgres, not to"):
        await run_bootstrap(db)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda db: {"schema": "Knowledge"}, "schema must be a PostgreSQL name"),
        (lambda db: {"writer": "pg_writer"}, "writer must be a PostgreSQL name"),
        (lambda db: {"reader": "reader; DROP TABLE x"}, "reader must be a PostgreSQL name"),
        (lambda db: {"reader": db.writer}, "writer and reader must be two database users"),
        (lambda db: {"writer": db.master}, "the master user"),
        (lambda db: {"dimensions": 0}, "dimensions must be a positive integer"),
    ],
)
async def test_bad_arguments_are_refused_before_anything_changes(
    db: Cluster, change: Callable[[Cluster], dict[str, Any]], message: str
) -> None:
    names = {"schema": db.schema, "writer": db.writer, "reader": db.reader, "dimensions": None}
    arguments = names | change(db)
    async with await psycopg.AsyncConnection.connect(db.master_dsn, autocommit=True) as conn:
        with pytest.raises(ValueError, match=message):
            await bootstrap(conn, **arguments)
    assert catalog(db, "SELECT 1 FROM pg_namespace WHERE nspname = %s", db.schema) == []


# --- the Lambda host ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "aws_database_bootstrap", RUNTIME / "aws_database_bootstrap.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Lambda environment, pointed at moto: region, the execution role's (fake) credentials."""
    monkeypatch.setenv("AWS_REGION", moto.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret_access_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it resolved first
    return boto3.client("secretsmanager", region_name=moto.region)


def event(db: Cluster, secret_arn: str) -> dict[str, Any]:
    """What the infrastructure passes: the server here is a unix socket's directory and port."""
    server = conninfo_to_dict(db.admin_dsn)
    return {
        "secretArn": secret_arn,
        "host": server["host"],
        "port": int(server.get("port") or 5432),
        "database": server["dbname"],
        "schema": db.schema,
        "writer": db.writer,
        "reader": db.reader,
        "dimensions": DIMENSIONS,
    }


def test_the_host_signs_in_with_the_master_secret_and_returns_no_secret(
    host: ModuleType, aws: Any, db: Cluster
) -> None:
    secret = json.dumps({"username": db.master, "password": db.master_password, "engine": "postgres"})
    arn = aws.create_secret(Name=f"rds!cluster-{db.schema}", SecretString=secret)["ARN"]

    summary = host.handler(event(db, arn), None)

    assert summary == {
        "database": conninfo_to_dict(db.admin_dsn)["dbname"],
        "schema": db.schema,
        "writer": db.writer,
        "reader": db.reader,
        "createdRoles": [db.writer, db.reader],
        "dimensions": DIMENSIONS,
    }
    assert db.master_password not in json.dumps(summary)
    assert host.handler(event(db, arn), None)["createdRoles"] == [], "a second deployment changes nothing"
    assert catalog(
        db, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", db.schema
    ) == [(db.writer,)]


def test_the_host_fails_with_a_wrong_master_password(host: ModuleType, aws: Any, db: Cluster) -> None:
    secret = json.dumps({"username": db.master, "password": "not-the-password"})
    arn = aws.create_secret(Name=f"wrong-{db.schema}", SecretString=secret)["ARN"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed") as failed:
        host.handler(event(db, arn), None)
    assert "not-the-password" not in str(failed.value)


def test_the_host_refuses_a_secret_without_credentials(host: ModuleType, aws: Any, db: Cluster) -> None:
    arn = aws.create_secret(Name=f"bare-{db.schema}", SecretString="s3cr3t-not-json")["ARN"]
    with pytest.raises(RuntimeError, match="must be JSON with username and password") as refused:
        host.handler(event(db, arn), None)
    assert "s3cr3t" not in str(refused.value)


VALID_EVENT = {
    "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-abc",
    "host": "knowledge.cluster-abc.us-east-1.rds.amazonaws.com",
    "port": 5432,
    "database": "agentstage",
    "schema": "agentstage",
    "writer": "knowledge_writer",
    "reader": "knowledge_reader",
}


@pytest.mark.parametrize(
    ("event_", "message"),
    [
        ([], "the event must be a JSON object, not list"),
        ({"secretArn": "arn"}, "the event lacks host, database, schema, writer, reader, port"),
        (VALID_EVENT | {"secretArn": ""}, "event key secretArn must be a non-empty string"),
        (VALID_EVENT | {"writer": 7}, "event key writer must be a non-empty string"),
        (VALID_EVENT | {"port": 0}, "event key port must be a TCP port number"),
        (VALID_EVENT | {"port": "5432x"}, "event key port must be a TCP port number"),
        (VALID_EVENT | {"dimensions": "1536"}, "event key dimensions must be an integer when given"),
    ],
)
def test_the_host_names_the_event_key_that_is_wrong(host: ModuleType, event_: Any, message: str) -> None:
    with pytest.raises(host.BootstrapEventError, match=message):
        host.parse_event(event_)


def test_the_host_reads_a_port_given_as_text_and_no_dimensions(host: ModuleType) -> None:
    assert host.parse_event(VALID_EVENT | {"port": "5433"}) == VALID_EVENT | {
        "port": 5433,
        "dimensions": None,
    }
