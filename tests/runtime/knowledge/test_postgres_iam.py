"""IAM database authentication: every new connection signs in with a token asked for at that moment, the
token boto3 signs is for the DSN's endpoint and user, and a DSN IAM sign-in cannot use is refused at start.

Against the stand-in for Aurora (``iam_database``), where the writer must give its password: the token
provider hands out that password, so a connection only opens with what the provider returned."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import boto3
import psycopg
import pytest
from contract import DIMENSIONS, ask, document
from iam_database import Cluster, as_user, cluster, password_signin
from psycopg.conninfo import conninfo_to_dict

from agent_runtime.errors import ConfigurationError
from agent_runtime.knowledge.factory import check_knowledge_settings, open_index
from agent_runtime.knowledge.postgres import KnowledgeTablesMissing, PostgresKnowledgeIndex
from agent_runtime.knowledge.postgres_bootstrap import bootstrap
from agent_runtime.memory.postgres import open_pool
from agent_runtime.memory.postgres_iam import RdsIamAuth, iam_target, postgres_auth
from agent_runtime.settings import Settings

pytestmark = pytest.mark.anyio

CLUSTER_DSN = "host=knowledge.cluster-abc123.eu-west-1.rds.amazonaws.com port=5433 dbname=kb user=kb_reader"
WRITER_PASSWORD = "writer-password"


class TokenSigner:
    """Stands in for boto3's RDS client: records what each token is signed for and returns ``token``."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[dict[str, Any]] = []

    def generate_db_auth_token(self, **request: Any) -> str:
        self.calls.append(request)
        return self.token


@pytest.fixture(scope="module")
def signin(postgres_dsn: str) -> Iterator[None]:
    with password_signin(postgres_dsn):
        yield


@pytest.fixture
async def db(postgres_dsn: str, signin: None) -> AsyncIterator[Cluster]:
    with cluster(postgres_dsn) as prepared:
        async with await psycopg.AsyncConnection.connect(prepared.master_dsn, autocommit=True) as conn:
            await bootstrap(conn, prepared.schema, prepared.writer, prepared.reader)
        yield prepared


async def test_the_pool_asks_for_a_token_for_every_connection_it_opens(db: Cluster) -> None:
    dsn = db.give_password(db.writer, WRITER_PASSWORD)
    signer = TokenSigner(WRITER_PASSWORD)
    auth = RdsIamAuth(iam_target(dsn), "eu-west-1", signer)

    index = await PostgresKnowledgeIndex.connect(dsn, DIMENSIONS, schema=db.schema, auth=auth)
    try:
        await index.replace_document("a", document("a", ["zyzzyva"]))
        assert [p.document_id for p in await index.search(ask("zyzzyva"))] == ["a"]
    finally:
        await index.close()
    assert len(signer.calls) == 2, "one for the setup connection, one for the pool's first"

    pool = await open_pool(dsn, auth)
    try:
        async with pool.connection() as first, pool.connection() as second:
            assert first.info.get_parameters()["sslmode"] == "require"
            assert second.info.password == WRITER_PASSWORD
        opened = pool.get_stats()["connections_num"]
    finally:
        await pool.close()
    assert opened == 2 and len(signer.calls) == 2 + opened
    server = conninfo_to_dict(dsn)
    assert signer.calls[-1] == {
        "DBHostname": server["host"],
        "Port": 5432,
        "DBUsername": db.writer,
        "Region": "eu-west-1",
    }


async def test_a_connection_opens_only_with_the_token_the_provider_returned(db: Cluster) -> None:
    dsn = db.give_password(db.writer, WRITER_PASSWORD)
    auth = RdsIamAuth(iam_target(dsn), "eu-west-1", TokenSigner("an-expired-token"))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        await PostgresKnowledgeIndex.connect(dsn, DIMENSIONS, schema=db.schema, auth=auth)


async def test_boto3_signs_a_token_for_the_dsns_endpoint_user_and_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEONLY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret-key-not-real")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for variable in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it resolved first
    settings = Settings(postgres_iam_auth=True, postgres_dsn=CLUSTER_DSN, aws_region="eu-west-1")

    auth = postgres_auth(settings)
    assert auth is not None
    params = await auth()

    assert params["sslmode"] == "require"
    endpoint, _, query = params["password"].partition("/?")
    assert endpoint == "knowledge.cluster-abc123.eu-west-1.rds.amazonaws.com:5433"
    signed = {name: values[0] for name, values in parse_qs(query).items()}
    assert signed["Action"] == "connect" and signed["DBUser"] == "kb_reader"
    key, _date, region, service, _ = signed["X-Amz-Credential"].split("/")
    assert (key, region, service) == ("AKIAEXAMPLEONLY", "eu-west-1", "rds-db")
    assert signed["X-Amz-Expires"] == "900" and signed["X-Amz-Signature"]


def test_without_iam_auth_the_dsn_is_used_as_it_is() -> None:
    assert postgres_auth(Settings(postgres_dsn="host=db user=u password=p")) is None


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("host=db user=u password=secret", "carries a password"),
        ("postgresql://u:secret@db/kb", "carries a password"),
        ("host=db user=u sslmode=disable", "sets sslmode=disable, but RDS accepts IAM tokens over TLS only"),
        ("host=db user=u sslmode=prefer", "sets sslmode=prefer"),
        ("host=db user=u sslmode=allow", "sets sslmode=allow"),
        ("user=u dbname=kb", "must name one host"),
        ("host=a,b user=u", "must name one host"),
        ("host=db dbname=kb", "must name the database user"),
        ("host=db user=u port=5432,5433", "must name one numeric port"),
        ("host=db user=u password secret", "is not a libpq connection string"),
    ],
)
def test_a_dsn_iam_sign_in_cannot_use_is_refused_at_start(dsn: str, message: str) -> None:
    settings = Settings(
        knowledge_backend="postgres", postgres_dsn=dsn, postgres_iam_auth=True, aws_region="eu-west-1"
    )
    with pytest.raises(ConfigurationError) as refused:
        check_knowledge_settings(settings, ["knowledge_search"])
    assert refused.value.field == "AGENTSTAGE_POSTGRES_DSN"
    assert message in refused.value.message and "AGENTSTAGE_POSTGRES_IAM_AUTH=true" in refused.value.message
    assert "secret" not in refused.value.message


async def test_a_dsn_that_verifies_the_server_keeps_its_sslmode() -> None:
    target = iam_target("host=db user=u sslmode=verify-full sslrootcert=/opt/rds-ca.pem")
    assert target.sslmode == "verify-full" and target.port == 5432
    assert await RdsIamAuth(target, "eu-west-1", TokenSigner("token"))() == {"password": "token"}


def test_iam_auth_needs_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    settings = Settings(knowledge_backend="postgres", postgres_dsn=CLUSTER_DSN, postgres_iam_auth=True)
    with pytest.raises(ConfigurationError, match="set AGENTSTAGE_AWS_REGION") as refused:
        check_knowledge_settings(settings, [])
    assert refused.value.field == "AGENTSTAGE_AWS_REGION"


async def test_the_factory_opens_a_reader_that_creates_nothing_unless_it_manages_the_index(
    db: Cluster,
) -> None:
    dsn = db.give_password(db.writer, WRITER_PASSWORD)
    settings = Settings(
        knowledge_backend="postgres",
        postgres_dsn=as_user(dsn, db.writer, WRITER_PASSWORD),
        knowledge_schema=db.schema,
        embedding_dimensions=DIMENSIONS,
    )
    with pytest.raises(KnowledgeTablesMissing, match=f"no table {db.schema}.knowledge_chunks"):
        await open_index(settings)
    index = await open_index(settings.model_copy(update={"knowledge_manage_index": True}))
    await index.close()
    reader = await open_index(settings)
    await reader.close()
