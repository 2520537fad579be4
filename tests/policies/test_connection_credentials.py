"""A connection-string setting is a credential unless its value demonstrably names no password."""

from __future__ import annotations

import pytest

from policies.rules.predicates import credential_free_connection

DSN = "AGENTSTAGE_POSTGRES_DSN"


@pytest.mark.parametrize(
    "value",
    [
        "host=db.example port=5432 dbname=agentstage user=agentstage_reader sslmode=require",
        "postgresql://agentstage_reader@db.example:5432/agentstage?sslmode=require",
    ],
)
def test_a_dsn_without_a_password_holds_no_credential(value: str) -> None:
    assert credential_free_connection(DSN, value)


@pytest.mark.parametrize(
    "value",
    [
        "host=db.example user=reader password=hunter2",
        "host=db.example user=reader Password = hunter2",
        "postgresql://reader:hunter2@db.example/agentstage",
        "postgresql://reader:@db.example/agentstage",
        "postgresql://reader@db.example/agentstage?sslmode=require&password=hunter2",
        "hunter2hunter2",
        "",
        "<secret>",
    ],
)
def test_anything_that_may_hold_a_password_is_a_credential(value: str) -> None:
    assert not credential_free_connection(DSN, value)


def test_only_connection_string_settings_are_judged_by_their_shape() -> None:
    assert not credential_free_connection("AGENTSTAGE_LLM_API_KEY", "host=db.example user=reader")
    assert credential_free_connection("DATABASE_CONNECTION_STRING", "host=db.example user=reader")
