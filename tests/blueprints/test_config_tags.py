"""The stack's tags go on every resource, so each is checked against its cloud's rules for tags first; the
tags agentstage sets itself are refused instead of silently overridden, and the kubernetes cloud, which tags
nothing, refuses tags like any key it would ignore."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from blueprints.topology import stack_tags
from core.config import parse_stack_config
from core.config.tags import KIT_TAGS
from tests.blueprints.test_config import SOURCE, error_for, valid_config
from tests.blueprints.test_config_aws import aws
from tests.blueprints.test_config_enterprise import own_cluster


def test_usual_tags_are_accepted_on_both_clouds() -> None:
    tags = {"owner": "platform-team", "costCenter": "4711", "team:app": "a b_c.d=e+f-g@h/i", "Ünïcode": "ça"}
    for stack in (aws, valid_config):
        assert parse_stack_config(stack(tags=tags), SOURCE).tags == tags


@pytest.mark.parametrize("cloud", [aws, valid_config], ids=["aws", "azure"])
@pytest.mark.parametrize(
    "name", ["managed-by", "Managed-By", "agentstage-environment", "agentstage-blueprint"]
)
def test_the_tags_agentstage_sets_are_refused(cloud: Callable[..., dict[str, str]], name: str) -> None:
    assert error_for(cloud(tags={name: "me"})) == (
        f"{SOURCE}: agentstage:tags: '{name}' is a tag agentstage sets itself on every resource "
        "(agentstage-blueprint, agentstage-environment, managed-by); remove it"
    )


def test_the_kit_tags_are_the_ones_the_blueprints_set() -> None:
    config = parse_stack_config(valid_config(tags={"owner": "me"}), SOURCE)
    assert set(stack_tags(config)) - set(config.tags) == set(KIT_TAGS)


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (
            {"aws:owner": "x"},
            "agentstage:tags: 'aws:owner' starts with aws:, which AWS reserves for its own tags",
        ),
        ({"AWS:owner": "x"}, "agentstage:tags: 'AWS:owner' starts with aws:, which AWS reserves"),
        (
            {"bad<key>%&?/": "x"},
            "agentstage:tags: 'bad<key>%&?/' is not an AWS tag key: 1-128 letters, digits",
        ),
        ({"line\nbreak": "x"}, "agentstage:tags: 'line\\nbreak' is not an AWS tag key"),
        ({"k" * 129: "x"}, "is not an AWS tag key: 1-128 letters, digits, spaces and _ . : / = + - @"),
        ({"": "x"}, "agentstage:tags: '' is not an AWS tag key"),
        ({"owner": "v" * 257}, "agentstage:tags.owner: the value has 257 characters; AWS allows at most 256"),
        ({"owner": "\u202egnp.exe"}, "agentstage:tags.owner: '\\u202egnp.exe' is not an AWS tag value"),
        ({"owner": "a\nb"}, "agentstage:tags.owner: 'a\\nb' is not an AWS tag value"),
    ],
)
def test_what_aws_refuses_in_tags_is_named(tags: dict[str, str], message: str) -> None:
    error = error_for(aws(tags=tags))
    assert message in error and "\n" not in error.removeprefix(SOURCE)


def test_an_aws_tag_value_may_be_empty_or_256_characters() -> None:
    tags = {"empty": "", "long": "v" * 256}
    assert parse_stack_config(aws(tags=tags), SOURCE).tags == tags


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"bad<key>%&?/": "x"}, "agentstage:tags: 'bad<key>%&?/' is not an Azure tag name: 1-128 characters"),
        ({"a\\b": "x"}, "is not an Azure tag name"),
        ({"line\nbreak": "x"}, "agentstage:tags: 'line\\nbreak' is not an Azure tag name"),
        ({"k" * 129: "x"}, "is not an Azure tag name: 1-128 characters (the limit of storage accounts"),
        (
            {"owner": "v" * 257},
            "agentstage:tags.owner: the value has 257 characters; Azure allows at most 256",
        ),
        ({"owner": "\u202egnp.exe"}, "agentstage:tags.owner: '\\u202egnp.exe' holds control or formatting"),
        ({"Owner": "a", "owner": "b"}, "agentstage:tags: 'Owner' and 'owner' are one tag on Azure"),
    ],
)
def test_what_azure_refuses_in_tags_is_named(tags: dict[str, str], message: str) -> None:
    error = error_for(valid_config(tags=tags))
    assert message in error and "\n" not in error.removeprefix(SOURCE)


def test_azure_takes_symbols_aws_does_not() -> None:
    tags = {"cost center (EU)": "#4711; 50%", "k" * 128: "v" * 256}
    assert parse_stack_config(valid_config(tags=tags), SOURCE).tags == tags


def test_no_more_tags_than_a_resource_carries() -> None:
    tags = {f"t{i}": "x" for i in range(48)}
    assert (
        "agentstage:tags: 48 tags; a resource carries at most 50, 3 of them agentstage's own, so give at most 47"
        in (error_for(aws(tags=tags)))
    )
    del tags["t0"]
    assert len(parse_stack_config(aws(tags=tags), SOURCE).tags) == 47


def test_your_own_cluster_refuses_tags_it_would_ignore() -> None:
    message = error_for(own_cluster(tags={"owner": "me"}))
    assert "agentstage:tags applies to " in message and "not enterprise on kubernetes" in message
    assert "no cloud resource to tag" in message
