"""The Azure gateway's caller allow-list takes Entra application (client) ids only, and its publisher fields
API Management's lengths: each id becomes a named value inside validate-azure-ad-token, where a policy
expression would let a caller's own request choose an accepted application."""

from __future__ import annotations

import pytest

from core.config import parse_stack_config
from tests.blueprints.test_config import SOURCE, error_for, valid_config
from tests.blueprints.test_config_enterprise import FOUNDATION_KEYS

APP_ID = "11111111-2222-3333-4444-555555555555"
GATEWAY = FOUNDATION_KEYS["gateway"]
assert isinstance(GATEWAY, dict)


def foundation(**gateway: object) -> dict[str, str]:
    return valid_config(blueprint="foundation", **{**FOUNDATION_KEYS, "gateway": {**GATEWAY, **gateway}})


def test_application_ids_in_guid_form_are_accepted() -> None:
    ids = [APP_ID, APP_ID.upper()]
    config = parse_stack_config(foundation(callerApplicationIds=ids), SOURCE)
    assert config.gateway is not None and config.gateway.caller_application_ids == tuple(ids)


@pytest.mark.parametrize(
    "caller",
    [
        "",
        '@(context.Request.Headers.GetValueOrDefault("x-app",""))',
        "{{another-named-value}}",
        "my-frontend",
        f"{APP_ID}\n",
        f"{APP_ID},{APP_ID}",
        APP_ID.replace("-", ""),
    ],
)
def test_anything_but_an_application_id_is_refused_by_its_position(caller: str) -> None:
    message = error_for(foundation(callerApplicationIds=[APP_ID, caller]))
    assert message == (
        f"{SOURCE}: agentstage:gateway.callerApplicationIds[1]: expected a GUID (8-4-4-4-12 hexadecimal digits, "
        f"e.g. 11111111-2222-3333-4444-555555555555) (got {caller!r})"
    )


@pytest.mark.parametrize(
    ("key", "valid"), [("publisherName", "n" * 100), ("publisherEmail", "a" * 88 + "@example.com")]
)
def test_publisher_fields_take_what_api_management_takes(key: str, valid: str) -> None:
    """API Management refuses a publisher name or email over 100 characters; a longer value is shown by its
    start and length, not whole."""
    config = parse_stack_config(foundation(**{key: valid}), SOURCE)
    assert config.gateway is not None
    message = error_for(foundation(**{key: "x" + valid}))
    assert message == (
        f"{SOURCE}: agentstage:gateway.{key}: String should have at most 100 characters "
        f"(got {('x' + valid)[:80]!r}... (101 characters))"
    )
