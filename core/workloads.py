"""Where compute resources keep their environment, whatever the platform.

Secrets rules and the agent-budget rule read environment settings of Function Apps, Container Apps,
container instances, Kubernetes workloads and Lambda functions; this module is the one place that
knows where each platform puts them, and where a Kubernetes workload keeps its pod template.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.graph import Resource

WEB_APP = "azure-native:web:WebApp"
WEB_APP_SETTINGS = "azure-native:web:WebAppApplicationSettings"
CONTAINER_APP = "azure-native:app:ContainerApp"
CONTAINER_GROUP = "azure-native:containerinstance:ContainerGroup"
LAMBDA_FUNCTION = "aws:lambda/function:Function"

K8S_POD = "kubernetes:core/v1:Pod"
K8S_CRON_JOB = "kubernetes:batch/v1:CronJob"
K8S_WORKLOADS = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:ReplicaSet",
    "kubernetes:batch/v1:Job",
    K8S_CRON_JOB,
    K8S_POD,
)

AZURE_SETTING_HOLDERS = (WEB_APP, WEB_APP_SETTINGS, CONTAINER_APP, CONTAINER_GROUP)
SETTING_HOLDERS = (*AZURE_SETTING_HOLDERS, LAMBDA_FUNCTION, *K8S_WORKLOADS)


@dataclass(frozen=True)
class Setting:
    """One environment setting: where it is (for messages), its name, and how its value is given.

    ``value`` is the literal value (or ``None``); ``indirect`` is set when the platform resolves the
    value from a secret store at run time (a Container Apps ``secretRef`` to a Key Vault secret, a
    Kubernetes ``secretKeyRef``, an ACI ``secureValue``) and says which.
    """

    where: str
    name: str
    value: Any
    indirect: str | None = None


def settings(resource: Resource) -> list[Setting]:
    """Every environment setting ``resource`` gives its code."""
    reader = _READERS.get(resource.type)
    if reader is None and resource.type in K8S_WORKLOADS:
        reader = _kubernetes
    return list(reader(resource)) if reader else []


def _web_app(resource: Resource) -> Iterator[Setting]:
    for item in _list(resource.get("siteConfig.appSettings")):
        yield Setting("siteConfig.appSettings", str(item.get("name", "")), item.get("value"))


def _web_app_settings(resource: Resource) -> Iterator[Setting]:
    properties = resource.get("properties")
    for name, value in properties.items() if isinstance(properties, dict) else ():
        yield Setting("properties", name, value)


def _container_app(resource: Resource) -> Iterator[Setting]:
    secrets = {s.get("name"): s for s in _list(resource.get("configuration.secrets"))}
    for container in _list(resource.get("template.containers")):
        for env in _list(container.get("env")):
            where = f"template.containers[{container.get('name')}].env"
            ref = env.get("secretRef")
            if ref is None:
                yield Setting(where, str(env.get("name", "")), env.get("value"))
                continue
            secret = secrets.get(ref, {})
            if secret.get("keyVaultUrl"):
                yield Setting(
                    where, str(env.get("name", "")), None, indirect=f"Key Vault secret via secretRef '{ref}'"
                )
            else:
                # A Container Apps secret with an inline value is still a literal in the template.
                yield Setting(f"configuration.secrets[{ref}]", str(env.get("name", "")), secret.get("value"))


def _container_group(resource: Resource) -> Iterator[Setting]:
    for container in _list(resource.get("containers")):
        for env in _list(container.get("environmentVariables")):
            where = f"containers[{container.get('name')}].environmentVariables"
            if env.get("secureValue") is not None:
                yield Setting(where, str(env.get("name", "")), None, indirect="secureValue")
            else:
                yield Setting(where, str(env.get("name", "")), env.get("value"))


def _lambda(resource: Resource) -> Iterator[Setting]:
    variables = resource.get("environment.variables")
    for name, value in variables.items() if isinstance(variables, dict) else ():
        yield Setting("environment.variables", name, value)


def _kubernetes(resource: Resource) -> Iterator[Setting]:
    for container in containers(resource):
        for env in _list(container.get("env")):
            where = f"containers[{container.get('name')}].env"
            if isinstance(env.get("valueFrom"), dict) and env["valueFrom"].get("secretKeyRef"):
                yield Setting(where, str(env.get("name", "")), None, indirect="secretKeyRef")
            else:
                yield Setting(where, str(env.get("name", "")), env.get("value"))


_READERS = {
    WEB_APP: _web_app,
    WEB_APP_SETTINGS: _web_app_settings,
    CONTAINER_APP: _container_app,
    CONTAINER_GROUP: _container_group,
    LAMBDA_FUNCTION: _lambda,
}


# --- Kubernetes pod templates ------------------------------------------------------------------------


def pod_template(resource: Resource) -> dict[str, Any]:
    """The pod template (``metadata`` + ``spec``) of a workload; a Pod is its own template."""
    if resource.type == K8S_POD:
        return {"metadata": resource.get("metadata") or {}, "spec": resource.get("spec") or {}}
    path = "spec.jobTemplate.spec.template" if resource.type == K8S_CRON_JOB else "spec.template"
    template = resource.get(path)
    return template if isinstance(template, dict) else {}


def pod_spec(resource: Resource) -> dict[str, Any]:
    spec = pod_template(resource).get("spec")
    return spec if isinstance(spec, dict) else {}


def containers(resource: Resource) -> list[dict[str, Any]]:
    """Containers and init containers: both run the workload's code with its privileges."""
    spec = pod_spec(resource)
    return _list(spec.get("initContainers")) + _list(spec.get("containers"))


def namespace(resource: Resource) -> str:
    value = resource.get("metadata.namespace")
    return value if isinstance(value, str) and value else "default"


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
