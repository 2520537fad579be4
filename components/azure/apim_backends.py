"""Model backends of the gateway: one API Management backend per Azure OpenAI account, pooled.

Each backend carries a circuit breaker that opens on throttling (429) and server errors (5xx) and
honours ``Retry-After``; the pool sends traffic by priority, then weight, and only falls back to a
lower priority while every backend above it is tripped (learn.microsoft.com/azure/api-management/
backends: "Circuit breaker", "Load-balanced pool"). API Management accepts one breaker rule per backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import apimanagement as apim

from components.azure.context import AzureContext
from components.azure.models import Models

POOL_ID = "models-pool"
POOL_WEIGHT_RANGE = range(101)
"""The pool's documented bounds for both priority and weight."""


@dataclass(frozen=True)
class ModelBackendArgs:
    """One Azure OpenAI account in the pool.

    ``priority`` (default 1, highest): lower-priority backends (larger numbers) serve only while all
    higher ones are tripped, e.g. pay-as-you-go behind provisioned throughput. ``weight`` (default 1)
    shares traffic among backends of the same priority. Both 0-100.
    """

    name: str
    models: Models
    priority: int = 1
    weight: int = 1

    def __post_init__(self) -> None:
        for setting in ("priority", "weight"):
            value = getattr(self, setting)
            if value not in POOL_WEIGHT_RANGE:
                raise ValueError(
                    f"model backend '{self.name}': {setting} must be between 0 and 100, got {value}"
                )


@dataclass(frozen=True)
class CircuitBreakerArgs:
    """When a model backend leaves the pool.

    Defaults: the first 429 or 5xx (``failure_count`` 1) within ``interval`` (1 minute) trips it for
    ``trip_duration`` (1 minute), or for as long as the backend's ``Retry-After`` asks
    (``accept_retry_after``). One 429 is enough: Azure OpenAI answers it when the deployment's
    tokens-per-minute quota is spent, and every further request would only earn another 429.
    Durations are ISO 8601.
    """

    failure_count: int = 1
    interval: str = "PT1M"
    trip_duration: str = "PT1M"
    accept_retry_after: bool = True

    def __post_init__(self) -> None:
        if self.failure_count < 1:
            raise ValueError(f"circuit breaker failure_count must be at least 1, got {self.failure_count}")

    def rule(self) -> apim.CircuitBreakerRuleArgs:
        return apim.CircuitBreakerRuleArgs(
            name="throttled-or-failing",
            failure_condition=apim.CircuitBreakerFailureConditionArgs(
                count=self.failure_count,
                interval=self.interval,
                status_code_ranges=[
                    apim.FailureStatusCodeRangeArgs(min=429, max=429),
                    apim.FailureStatusCodeRangeArgs(min=500, max=599),
                ],
            ),
            trip_duration=self.trip_duration,
            accept_retry_after=self.accept_retry_after,
        )


def create_model_backends(
    name: str,
    models: tuple[ModelBackendArgs, ...],
    *,
    circuit_breaker: CircuitBreakerArgs | None,
    service_name: pulumi.Input[str],
    context: AzureContext,
    opts: pulumi.ResourceOptions,
) -> apim.Backend:
    """A backend per account (``<endpoint>openai``, certificates validated) and the pool over them
    (returned; ``set-backend-service`` names it by :data:`POOL_ID`).

    ``circuit_breaker`` is ``None`` where the tier has none (Consumption): the pool still balances.
    """
    members = tuple(
        apim.Backend(
            f"{name}-model-{model.name}",
            backend_id=f"model-{model.name}",
            url=pulumi.Output.concat(model.models.endpoint, "openai"),
            protocol=apim.BackendProtocol.HTTP,
            tls=apim.BackendTlsPropertiesArgs(
                validate_certificate_chain=True, validate_certificate_name=True
            ),
            circuit_breaker=(
                apim.BackendCircuitBreakerArgs(rules=[circuit_breaker.rule()]) if circuit_breaker else None
            ),
            service_name=service_name,
            resource_group_name=context.resource_group_name,
            opts=opts,
        )
        for model in models
    )
    return apim.Backend(
        f"{name}-{POOL_ID}",
        backend_id=POOL_ID,
        type=apim.BackendType.POOL,
        description="Model deployments, by priority then weight",
        pool=apim.BackendBaseParametersPoolArgs(
            services=[
                apim.BackendPoolItemArgs(id=backend.id, priority=model.priority, weight=model.weight)
                for backend, model in zip(members, models, strict=True)
            ]
        ),
        service_name=service_name,
        resource_group_name=context.resource_group_name,
        opts=opts,
    )
