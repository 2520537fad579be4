"""A stand-in for an Aurora PostgreSQL cluster on the tests' shared PostgreSQL server.

The shared server trusts every local connection, so a wrong password would pass unnoticed. Here members of
:data:`PASSWORD_GROUP` must sign in with their password (``scram-sha-256``), as RDS users must with a
token: :func:`password_signin` puts that rule first in the server's ``pg_hba.conf`` and takes it out again.
:func:`cluster` adds what RDS has: the ``rds_iam`` role and a master user who is no superuser (it may
create roles, holds ``rds_iam`` with ADMIN, and may create schemas), with a password; it removes the
users and schema afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

PASSWORD_GROUP = "agentstage_password_signin"
RELOAD_TIMEOUT_SECONDS = 10.0


@contextmanager
def password_signin(dsn: str) -> Iterator[None]:
    """Members of :data:`PASSWORD_GROUP` must give their password while this lasts."""
    probe, password = f"probe_{uuid.uuid4().hex[:8]}", "probe-password"
    with psycopg.connect(dsn, autocommit=True) as db:
        if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PASSWORD_GROUP,)).fetchone() is None:
            db.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(PASSWORD_GROUP)))
        db.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(probe), sql.Literal(password), sql.Identifier(PASSWORD_GROUP)
            )
        )
        (hba_file,) = db.execute("SHOW hba_file").fetchone() or ("",)
        hba = Path(hba_file)
        original = hba.read_text()
        hba.write_text(f"local all +{PASSWORD_GROUP} scram-sha-256\n{original}")
        try:
            db.execute("SELECT pg_reload_conf()")
            _wait_until_refused(as_user(dsn, probe, "wrong-password"))
            yield
        finally:
            hba.write_text(original)
            db.execute("SELECT pg_reload_conf()")
            db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(probe)))


def _wait_until_refused(dsn: str) -> None:
    """The server applies a reloaded pg_hba.conf to connections after its postmaster read it."""
    deadline = time.monotonic() + RELOAD_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            psycopg.connect(dsn).close()
        except psycopg.OperationalError as error:
            if "password authentication failed" in str(error):
                return
            raise
        time.sleep(0.05)
    raise AssertionError("the server still accepts a wrong password after reloading pg_hba.conf")


def as_user(dsn: str, user: str, password: str | None = None) -> str:
    """``dsn`` for another user (the server's socket and database), with or without a password."""
    params = conninfo_to_dict(dsn)
    params.pop("password", None)
    params["user"] = user
    if password is not None:
        params["password"] = password
    return make_conninfo(**params)


@dataclass(frozen=True)
class Cluster:
    """The server as the bootstrap sees it on RDS: the superuser's DSN stays with the test."""

    admin_dsn: str
    master: str
    master_password: str
    schema: str
    writer: str
    reader: str

    @property
    def master_dsn(self) -> str:
        return as_user(self.admin_dsn, self.master, self.master_password)

    def give_password(self, role: str, password: str) -> str:
        """What RDS does with IAM tokens, done with a local password: the role must now sign in with it.
        Returns the role's DSN without the password."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as db:
            db.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
            )
            db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(PASSWORD_GROUP), sql.Identifier(role)))
        return as_user(self.admin_dsn, role)


@contextmanager
def cluster(admin_dsn: str) -> Iterator[Cluster]:
    """A master user like RDS's, names for a schema and two database users; all removed afterwards."""
    suffix = uuid.uuid4().hex[:8]
    found = Cluster(
        admin_dsn=admin_dsn,
        master=f"master_{suffix}",
        master_password=f"master-password-{suffix}",
        schema=f"knowledge_{suffix}",
        writer=f"writer_{suffix}",
        reader=f"reader_{suffix}",
    )
    master = sql.Identifier(found.master)
    with psycopg.connect(admin_dsn, autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS vector")  # RDS lets its master user create it
        if db.execute("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'").fetchone() is None:
            db.execute("CREATE ROLE rds_iam")
        db.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {} IN ROLE {}").format(
                master, sql.Literal(found.master_password), sql.Identifier(PASSWORD_GROUP)
            )
        )
        db.execute(sql.SQL("GRANT rds_iam TO {} WITH ADMIN OPTION").format(master))
        db.execute(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(db.info.dbname), master)
        )
    try:
        yield found
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as db:
            db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(found.schema)))
            for role in (found.writer, found.reader, found.master):
                if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                    db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
