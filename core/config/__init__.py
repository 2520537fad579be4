"""The stack model: everything a stack file may say (see :mod:`core.config.stack`), validated per cloud."""

from core.config.agents import (
    AgentConfig,
    MemoryConfig,
    ModelDeploymentConfig,
    OrchestratorConfig,
    RoutingRuleConfig,
    RuntimeBudgetConfig,
)
from core.config.aws import EksConfig, ExistingVpcConfig, LambdaConfig, VpcConfig
from core.config.azure import (
    FunctionsConfig,
    GatewayConfig,
    MessagingConfig,
    NetworkConfig,
    PolicyConfig,
    VectorSearchConfig,
)
from core.config.base import NAMESPACE, StackConfigError, describe_validation_error
from core.config.sections import (
    AlertsConfig,
    ApiConfig,
    BudgetConfig,
    ContentFilterConfig,
    KubernetesConfig,
    NodePoolConfig,
    WaiverConfig,
)
from core.config.stack import StackConfig, parse_stack_config

__all__ = [
    "NAMESPACE",
    "AgentConfig",
    "AlertsConfig",
    "ApiConfig",
    "BudgetConfig",
    "ContentFilterConfig",
    "EksConfig",
    "ExistingVpcConfig",
    "FunctionsConfig",
    "GatewayConfig",
    "KubernetesConfig",
    "LambdaConfig",
    "MemoryConfig",
    "MessagingConfig",
    "ModelDeploymentConfig",
    "NetworkConfig",
    "NodePoolConfig",
    "OrchestratorConfig",
    "PolicyConfig",
    "RoutingRuleConfig",
    "RuntimeBudgetConfig",
    "StackConfig",
    "StackConfigError",
    "VectorSearchConfig",
    "VpcConfig",
    "WaiverConfig",
    "describe_validation_error",
    "parse_stack_config",
]
