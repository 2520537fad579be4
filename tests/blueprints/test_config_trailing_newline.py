"""A value with a line break after it is refused wherever the stack model checks a form itself (a Python
pattern ending in $ also matches before a final newline): it would reach IAM ARNs, the token authorizer's
audiences, VM sizes and image references as it is."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.config import parse_stack_config
from tests.blueprints.test_config import SOURCE, error_for, valid_config
from tests.blueprints.test_config_aws import BEDROCK_MODELS, aws
from tests.blueprints.test_config_enterprise import ENTERPRISE_KEYS, IMAGE, enterprise

KUBERNETES = ENTERPRISE_KEYS["kubernetes"]
assert isinstance(KUBERNETES, dict)
TAGGED = IMAGE.split("@")[0] + ":1.4.2"


def _aws_model(value: str) -> dict[str, str]:
    return aws(models=[{**BEDROCK_MODELS[0], "model": value}, BEDROCK_MODELS[1]])


def _aws_audience(value: str) -> dict[str, str]:
    return aws(api={"issuer": "https://issuer.example.com", "audience": value})


def _azure_audience(value: str) -> dict[str, str]:
    return valid_config(api={"audience": value})


def _vm_size(value: str) -> dict[str, str]:
    return enterprise(kubernetes={**KUBERNETES, "systemPool": {"vmSize": value}})


def _image(value: str) -> dict[str, str]:
    return enterprise(kubernetes={**KUBERNETES, "image": value})


# (what the stack file says, its valid value, the key the message names)
FIELDS: list[tuple[Callable[[str], dict[str, str]], str, str]] = [
    (_aws_model, "eu.amazon.nova-lite-v1:0", "agentstage:models[0].model"),
    (_aws_audience, "api://agents", "agentstage:api.audience"),
    (_aws_audience, "agentstage-client", "agentstage:api.audience"),
    (_azure_audience, "api://agents", "agentstage:api.audience"),
    (_azure_audience, "11111111-2222-3333-4444-555555555555", "agentstage:api.audience"),
    (_vm_size, "Standard_D4ds_v5", "agentstage:kubernetes.systemPool.vmSize"),
    (_image, IMAGE, "agentstage:kubernetes.image"),  # the digest
    (_image, TAGGED, "agentstage:kubernetes.image"),  # the tag
    (_image, TAGGED.replace(":1.4.2", "@sha256:" + "a" * 64), "agentstage:kubernetes.image"),
]


@pytest.mark.parametrize(("stack", "value", "key"), FIELDS)
def test_the_value_itself_is_accepted(stack: Callable[[str], dict[str, str]], value: str, key: str) -> None:
    parse_stack_config(stack(value), SOURCE)


@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize(("stack", "value", "key"), FIELDS)
def test_the_value_with_a_line_break_after_it_is_refused_on_one_line(
    stack: Callable[[str], dict[str, str]], value: str, key: str, ending: str
) -> None:
    message = error_for(stack(value + ending))
    assert f"{key}: " in message
    assert "\n" not in message and "\r" not in message, message


def test_an_image_repository_with_a_line_break_is_refused() -> None:
    """The repository part of an image is checked apart from its tag or digest."""
    host, _, path = IMAGE.partition("/")
    message = error_for(
        _image(f"{host}/{path.replace('agentstage-runtime', 'agentstage-runtime' + chr(10))}")
    )
    assert "agentstage:kubernetes.image: " in message
