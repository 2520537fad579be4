"""What a stack on your own cluster hands to Kubernetes and KEDA is checked in the form each takes: annotation
keys, the settings Secret's name, the identity the queue triggers authenticate as, and where the queues are
(the region, the Service Bus namespace, the storage account)."""

from __future__ import annotations

import pytest

from blueprints.own_cluster import queue_trigger
from core.config import parse_stack_config
from tests.blueprints.test_config import SOURCE, error_for
from tests.blueprints.test_config_enterprise import RUNTIME_SETTINGS, own_cluster

ROLE_ARN = "arn:aws:iam::123456789012:role/agentstage-agents"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
KUBERNETES = {"image": "ghcr.io/acme/runtime:1.4.2", "agents": ["assistant"], "settingsSecret": "runtime-env"}


def cluster(annotations: dict[str, str] | None = None, **settings: str) -> dict[str, str]:
    """Your own cluster with ``annotations`` on the agents' service account and ``settings`` over the
    defaults (an SQS bus in eu-central-1 read as ROLE_ARN)."""
    return own_cluster(
        kubernetes={
            **KUBERNETES,
            "serviceAccountAnnotations": annotations or {"eks.amazonaws.com/role-arn": ROLE_ARN},
        },
        runtimeSettings={**RUNTIME_SETTINGS, **settings},
    )


def azure_bus(backend: str, **settings: str) -> dict[str, str]:
    return cluster({"azure.workload.identity/client-id": CLIENT_ID}, bus_backend=backend, **settings)


@pytest.mark.parametrize(
    "key",
    [
        "eks.amazonaws.com/sts-regional-endpoints",
        "example.com/team",
        "a.b-c.d/Name_with.dots-9",
        "plain-name",
        "x" * 253 + "/" + "y" * 63,
    ],
)
def test_annotation_keys_of_kubernetes_form_are_accepted(key: str) -> None:
    annotations = {"eks.amazonaws.com/role-arn": ROLE_ARN, key: "value"}
    config = parse_stack_config(cluster(annotations), SOURCE)
    assert config.kubernetes is not None and key in config.kubernetes.service_account_annotations


@pytest.mark.parametrize(
    "key",
    [
        "Bad Key!/x/y",
        "Example.com/team",  # the prefix is a DNS subdomain: lowercase
        "example.com/",
        "-starts-with-a-hyphen",
        "ends.with.a.dot.",
        "x" * 254 + "/name",
        "example.com/" + "y" * 64,
        "team\n",
        "",
    ],
)
def test_other_annotation_keys_are_refused(key: str) -> None:
    annotations = {"eks.amazonaws.com/role-arn": ROLE_ARN, key: "value"}
    message = error_for(cluster(annotations))
    assert message.startswith(
        f"{SOURCE}: agentstage:kubernetes.serviceAccountAnnotations: {key!r} is not a Kubernetes annotation key: "
        "[<prefix>/]<name>"
    )


@pytest.mark.parametrize(
    ("annotation", "value", "form"),
    [
        ("eks.amazonaws.com/role-arn", "*", "an IAM role ARN"),
        ("eks.amazonaws.com/role-arn", "arn:aws:iam::123456789012:user/someone", "an IAM role ARN"),
        ("eks.amazonaws.com/role-arn", ROLE_ARN + "\n", "an IAM role ARN"),
        ("azure.workload.identity/client-id", "not-a-guid", "a managed identity's client id"),
    ],
)
def test_the_identity_the_queue_triggers_take_must_be_one(annotation: str, value: str, form: str) -> None:
    """The annotations KEDA's TriggerAuthentication is built from: a '*' would become its roleArn."""
    message = error_for(cluster({annotation: value}))
    assert message.startswith(
        f"{SOURCE}: agentstage:kubernetes.serviceAccountAnnotations: {annotation}: {value!r} is not {form}"
    )


@pytest.mark.parametrize("secret", ["Bad_Secret Name!", "Runtime-Env", "runtime-env-", "a" * 254, "env\n"])
def test_the_settings_secret_must_be_a_kubernetes_name(secret: str) -> None:
    raw = own_cluster(
        kubernetes={
            **KUBERNETES,
            "settingsSecret": secret,
            "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": ROLE_ARN},
        }
    )
    assert f"{SOURCE}: agentstage:kubernetes.settingsSecret: " in error_for(raw)


@pytest.mark.parametrize("region", ["not a region\n", "eu-central-1\n", "eu-central-9", "westeurope"])
def test_the_aws_region_of_the_runtime_settings_is_an_aws_region(region: str) -> None:
    message = error_for(cluster(aws_region=region))
    assert message.startswith(
        f"{SOURCE}: agentstage:runtimeSettings.aws_region: {region!r} is not an AWS region"
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    ("url", "account"),
    [
        ("https://myacct.queue.core.windows.net", "myacct"),
        ("HTTPS://myacct.queue.core.windows.net/", "myacct"),
        ("https://MyAcct.Queue.Core.Windows.Net", "myacct"),
    ],
)
def test_keda_reads_the_storage_account_from_its_queue_endpoint(url: str, account: str) -> None:
    config = parse_stack_config(azure_bus("storage_queue", storage_queue_account_url=url), SOURCE)
    assert config.kubernetes is not None and config.runtime_settings is not None
    trigger = queue_trigger(config.runtime_settings, config.kubernetes, "tasks-assistant")
    assert trigger.metadata["accountName"] == account


@pytest.mark.parametrize(
    "url",
    [
        "http://myacct.queue.core.windows.net",
        "myacct.queue.core.windows.net",
        "https://myacct.blob.core.windows.net",
        "https://myacct.queue.core.windows.net.evil.example",
        "https://user@myacct.queue.core.windows.net",
        "https://myacct.queue.core.windows.net:8443",
        "https://myacct.queue.core.windows.net/queue",
        "https://myacct.queue.core.windows.net\n",
        "https://my-acct.queue.core.windows.net",
    ],
)
def test_a_storage_queue_endpoint_of_another_form_is_refused(url: str) -> None:
    message = error_for(azure_bus("storage_queue", storage_queue_account_url=url))
    assert message == (
        f"{SOURCE}: agentstage:runtimeSettings.storage_queue_account_url: {url!r} is not a storage account's queue "
        "endpoint: https://<account>.queue.core.windows.net, the account 3-24 lowercase letters or digits"
    )


def test_keda_reads_the_service_bus_namespace_from_its_host_name() -> None:
    config = parse_stack_config(
        azure_bus("servicebus", servicebus_namespace="Agents-NS.servicebus.windows.net"), SOURCE
    )
    assert config.kubernetes is not None and config.runtime_settings is not None
    trigger = queue_trigger(config.runtime_settings, config.kubernetes, "tasks-assistant")
    assert trigger.metadata["namespace"] == "agents-ns"


@pytest.mark.parametrize(
    "namespace",
    [
        "sb://agents-ns.servicebus.windows.net",
        "https://agents-ns.servicebus.windows.net/",
        "agents-ns",
        "agents-ns.servicebus.windows.net\n",
        "agents-ns.servicebus.windows.net.evil.example",
        "ns.servicebus.windows.net",
    ],
)
def test_a_service_bus_namespace_of_another_form_is_refused(namespace: str) -> None:
    message = error_for(azure_bus("servicebus", servicebus_namespace=namespace))
    assert message.startswith(
        f"{SOURCE}: agentstage:runtimeSettings.servicebus_namespace: {namespace!r} is not a fully qualified "
        "Service Bus namespace: <name>.servicebus.windows.net"
    )
