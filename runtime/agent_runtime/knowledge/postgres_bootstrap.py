"""Prepare an RDS / Aurora PostgreSQL database for the knowledge index with IAM database authentication.

Run once per deployment as the cluster's master user (the Lambda host ``aws_database_bootstrap.py``), and
safe to run again: everything is created only when missing, in one transaction, so a failure leaves the
database as it was. It prepares two database users that sign in with IAM tokens, never a password:

- the **writer** (the ingestion worker): owns the index's schema, so it creates and changes the tables;
- the **reader** (agents with ``knowledge_search``): may use the schema and SELECT from its tables, now and
  later (default privileges on what the writer creates), and nothing else.

Both hold ``rds_iam``, RDS's role that makes PostgreSQL accept an IAM token instead of a password; a server
without it is not RDS, and the bootstrap stops rather than create users that could never sign in. With
``dimensions`` the index's tables are created too, as the writer (who then owns them): agents can search an
empty index before the first ingestion instead of failing until it has run.

On PostgreSQL 16 the master user holds only ADMIN on a role it created, which does not let it create the
writer's schema or set the writer's default privileges: it grants itself the writer first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_runtime.memory.postgres import require_pgvector
from agent_runtime.settings_contract import env_name

from .postgres import check_dimensions, create_tables

if TYPE_CHECKING:
    from psycopg import AsyncConnection

IAM_ROLE = "rds_iam"
"""RDS's role whose members sign in with IAM tokens."""
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LOCK = 7_412_002  # advisory lock key: one bootstrap at a time


class BootstrapError(RuntimeError):
    """The database cannot be prepared as asked; the message names what to change."""


@dataclass(frozen=True)
class BootstrapReport:
    """What the bootstrap left in place (no secrets): safe to return to the deployment and to log."""

    schema: str
    writer: str
    reader: str
    created_roles: list[str]
    dimensions: int | None


def check_name(value: object, what: str) -> str:
    """A role or schema name that needs no quoting (lower case, as IAM policies name database users)."""
    if not isinstance(value, str) or not _NAME.match(value) or value.startswith("pg_"):
        raise ValueError(
            f"{what} must be a PostgreSQL name of lower-case letters, digits and underscores, starting "
            f"with a letter or underscore, at most 63 characters and not starting with pg_; got {value!r}"
        )
    return value


async def bootstrap(
    conn: AsyncConnection, schema: str, writer: str, reader: str, *, dimensions: int | None = None
) -> BootstrapReport:
    """Prepare ``schema`` for the ``writer`` and ``reader`` database users (see the module docstring);
    ``conn`` is the master user's autocommit connection."""
    from psycopg import sql

    _check_request(conn.info.user, schema, writer, reader, dimensions)
    names = {"schema": schema, "writer": writer, "reader": reader, "iam": IAM_ROLE}

    async def run(statement: str) -> None:
        await conn.execute(sql.SQL(statement).format(**{k: sql.Identifier(v) for k, v in names.items()}))

    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        await _require_iam_role(conn)
        await require_pgvector(conn)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        created = [role for role in (writer, reader) if await _create_login_role(conn, role)]
        await run("GRANT {iam} TO {writer}, {reader}")
        await run("GRANT {writer} TO CURRENT_USER")  # to create its schema, set its default privileges
        await run("CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {writer}")
        await _require_owner(conn, schema, writer)
        await run("GRANT USAGE ON SCHEMA {schema} TO {reader}")
        await run(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {writer} IN SCHEMA {schema} GRANT SELECT ON TABLES TO {reader}"
        )
        await run("GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader}")
        if dimensions is not None:
            # As the writer, who then owns the tables it alters later; SET LOCAL ends with the transaction.
            await run("SET LOCAL ROLE {writer}")
            await create_tables(conn, schema, dimensions)
            await check_dimensions(conn, schema, dimensions)
    return BootstrapReport(schema, writer, reader, created, dimensions)


def _check_request(master: str, schema: str, writer: str, reader: str, dimensions: int | None) -> None:
    check_name(schema, "schema")
    check_name(writer, "writer")
    check_name(reader, "reader")
    if writer == reader:
        raise ValueError(f"writer and reader must be two database users, both are {writer!r}")
    if master in (writer, reader):
        raise ValueError(f"the master user {master!r} cannot be the writer or the reader: name other users")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        raise ValueError(f"dimensions must be a positive integer, got {dimensions!r}")


async def _require_iam_role(conn: AsyncConnection) -> None:
    cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (IAM_ROLE,))
    if await cur.fetchone() is None:
        raise BootstrapError(
            f"role {IAM_ROLE} does not exist: this server is not Amazon RDS or Aurora PostgreSQL, where IAM "
            "database authentication grants it; point the bootstrap at the Aurora cluster"
        )


async def _create_login_role(conn: AsyncConnection, role: str) -> bool:
    """Create ``role`` with LOGIN when missing (True); an existing one must already be able to log in."""
    from psycopg import sql

    cur = await conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,))
    found = await cur.fetchone()
    if found is None:
        await conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        return True
    if not found[0]:
        raise BootstrapError(
            f"role {role} exists but cannot log in: ALTER ROLE {role} LOGIN, or name another user"
        )
    return False


async def _require_owner(conn: AsyncConnection, schema: str, writer: str) -> None:
    """A schema that was already there must be the writer's: the bootstrap never takes one from its owner."""
    cur = await conn.execute(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (schema,)
    )
    (owner,) = await cur.fetchone()
    if owner != writer:
        raise BootstrapError(
            f"schema {schema} exists and belongs to {owner}, not to the writer {writer}: name another "
            f"schema (the bootstrap's and {env_name('knowledge_schema')}), or ALTER SCHEMA {schema} OWNER "
            f"TO {writer}"
        )
