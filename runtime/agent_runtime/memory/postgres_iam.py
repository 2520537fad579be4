"""IAM database authentication for PostgreSQL on Amazon RDS and Aurora: a fresh token for every connection.

With ``postgres_iam_auth`` there is no password anywhere. ``postgres_dsn`` names the host, port, database
and database user; every connection the runtime opens (the first, and each one a pool adds later) presents
a token that boto3 signs locally with the execution role's credentials (SigV4 presigning: no network call).
RDS accepts a token for 15 minutes after signing and checks it only when a connection opens, so open
connections outlive it while new ones never reuse a stale one.

The role needs ``rds-db:connect`` on ``arn:aws:rds-db:<region>:<account>:dbuser:<cluster resource id>/<user>``
and the user must hold ``rds_iam`` in the database (:mod:`agent_runtime.knowledge.postgres_bootstrap`
prepares both database users). RDS refuses IAM sign-in without TLS, so a DSN that turns TLS off (or lets it
fall back to plain text) is refused, and one that does not say gets ``sslmode=require``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from agent_runtime.errors import ConfigurationError
from agent_runtime.settings import Settings
from agent_runtime.settings_contract import env_name

DEFAULT_PORT = 5432
TLS_MODES = ("require", "verify-ca", "verify-full")
"""The ``sslmode`` values that never connect without TLS."""


@dataclass(frozen=True)
class IamTarget:
    """What a token is signed for: the endpoint and database user the DSN names."""

    host: str
    port: int
    user: str
    sslmode: str | None


def iam_target(dsn: str) -> IamTarget:
    """The DSN's endpoint and user; :class:`ConfigurationError` naming the fix when IAM cannot use it."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    dsn_variable, iam_variable = env_name("postgres_dsn"), env_name("postgres_iam_auth")

    def refuse(problem: str) -> ConfigurationError:
        return ConfigurationError(f"{dsn_variable} {problem} ({iam_variable}=true)", field=dsn_variable)

    try:
        params = conninfo_to_dict(dsn)
    except ProgrammingError:  # libpq's message quotes the DSN, which may hold a password: not repeated
        raise refuse("is not a libpq connection string (key=value pairs or a postgresql:// URL)") from None
    if params.get("password"):
        raise refuse(
            "carries a password, but every connection signs in with an IAM token signed with the execution "
            "role's credentials (rds-db:connect): remove the password"
        )
    host, user, port = params.get("host") or "", params.get("user") or "", str(params.get("port") or "")
    if not host or "," in host:
        raise refuse("must name one host, the cluster endpoint the token is signed for (host=...)")
    if not user:
        raise refuse("must name the database user the IAM role may connect as (user=...)")
    if port and not port.isdigit():
        raise refuse(f"must name one numeric port, not {port!r}")
    sslmode = params.get("sslmode")
    if sslmode is not None and sslmode not in TLS_MODES:
        raise refuse(
            f"sets sslmode={sslmode}, but RDS accepts IAM tokens over TLS only: use sslmode=require, or "
            "verify-full with sslrootcert set to the RDS certificate bundle"
        )
    return IamTarget(host=host, port=int(port or DEFAULT_PORT), user=user, sslmode=sslmode)


class RdsIamAuth:
    """A :data:`~.postgres.ConnectionAuth`: a newly signed token as the password of each connection.

    Signing is local, but boto3 may first refresh the role's credentials (from the container or instance
    metadata endpoint, or STS): a blocking call, so it runs in a worker thread, off the event loop.
    """

    def __init__(self, target: IamTarget, region: str, client: Any) -> None:
        self._target = target
        self._region = region
        self._client = client
        self._fixed = {} if target.sslmode else {"sslmode": "require"}

    async def __call__(self) -> dict[str, str]:
        token = await asyncio.to_thread(
            self._client.generate_db_auth_token,
            DBHostname=self._target.host,
            Port=self._target.port,
            DBUsername=self._target.user,
            Region=self._region,
        )
        return {**self._fixed, "password": token}


def iam_settings(settings: Settings) -> tuple[IamTarget, str]:
    """The token's target and region; :class:`ConfigurationError` naming the variable to fix (checked at
    startup, before anything connects)."""
    target = iam_target(settings.postgres_dsn or "")
    region = settings.aws_region or os.environ.get("AWS_REGION")
    if not region:
        variable = env_name("aws_region")
        raise ConfigurationError(
            f"{env_name('postgres_iam_auth')}=true signs tokens for the database's region: set {variable} "
            "(or AWS_REGION)",
            field=variable,
        )
    return target, region


def postgres_auth(settings: Settings) -> RdsIamAuth | None:
    """How the PostgreSQL backends authenticate: ``None`` (the DSN as it is) unless ``postgres_iam_auth``."""
    if not settings.postgres_iam_auth:
        return None
    target, region = iam_settings(settings)
    import boto3  # requirements-aws.txt: imported only where IAM sign-in is on

    return RdsIamAuth(target, region, boto3.client("rds", region_name=region))
