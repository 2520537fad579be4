"""The curated map from azure-native type tokens to ARM resource types, for the ARM exporter.

Nothing in the azure-native SDK maps ``azure-native:web:WebApp`` to ``Microsoft.Web/sites``, and checkov
matches ARM types case-sensitively (a mis-cased type is counted but never checked), so every entry is
written out here with the exact casing of the REST API.

``name`` is a template over the resource's inputs, parent segments first, as ARM names child resources
(``"{accountName}/{deploymentName}"``); the inputs it names are URL path parameters and never reach
``properties``. ``scope`` names the input an extension resource (diagnostic setting, role assignment)
attaches to. ``in_properties`` lists envelope-looking inputs that this ARM type keeps under
``properties`` (a Log Analytics workspace's ``sku``). ``renames`` maps SDK input names to ARM property
names where they differ: the REST API's own spelling (Application Insights' ``Application_Type``) or the
wire name behind a client name the SDK took from the spec (a storage account's ``networkAcls``).

To add a type: find its REST path (``.../providers/Microsoft.X/things/{thingName}``), write the type
as it appears there and a name template over the inputs named after the path parameters. The apiVersion
is read from the SDK (``policies.export.arm.api_version``), and the test suite fails if it cannot be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class ArmType:
    """How one azure-native resource type is written in an ARM template."""

    type: str
    name: str
    scope: str | None = None
    in_properties: frozenset[str] = frozenset()
    renames: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


# The REST API of Application Insights components spells most properties in PascalCase or with underscores.
_APP_INSIGHTS_RENAMES = MappingProxyType(
    {
        "applicationType": "Application_Type",
        "flowType": "Flow_Type",
        "requestSource": "Request_Source",
        "hockeyAppId": "HockeyAppId",
        "samplingPercentage": "SamplingPercentage",
        "retentionInDays": "RetentionInDays",
        "disableIpMasking": "DisableIpMasking",
        "immediatePurgeDataOn30Days": "ImmediatePurgeDataOn30Days",
        "workspaceResourceId": "WorkspaceResourceId",
        "ingestionMode": "IngestionMode",
        "disableLocalAuth": "DisableLocalAuth",
        "forceCustomerStorageForProfiler": "ForceCustomerStorageForProfiler",
    }
)

# The storage REST API's wire names where azure-native uses the spec's client names (x-ms-client-name).
_STORAGE_ACCOUNT_RENAMES = MappingProxyType(
    {
        "networkRuleSet": "networkAcls",
        "enableHttpsTrafficOnly": "supportsHttpsTrafficOnly",
        "enableNfsV3": "isNfsV3Enabled",
    }
)

ARM_TYPES: Mapping[str, ArmType] = MappingProxyType(
    {
        # Shared foundation: resource group, identity, access, observability, secrets.
        "azure-native:resources:ResourceGroup": ArmType(
            "Microsoft.Resources/resourceGroups", "{resourceGroupName}"
        ),
        "azure-native:managedidentity:UserAssignedIdentity": ArmType(
            "Microsoft.ManagedIdentity/userAssignedIdentities", "{resourceName}"
        ),
        "azure-native:managedidentity:FederatedIdentityCredential": ArmType(
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
            "{resourceName}/{federatedIdentityCredentialResourceName}",
        ),
        "azure-native:authorization:RoleAssignment": ArmType(
            "Microsoft.Authorization/roleAssignments", "{roleAssignmentName}", scope="scope"
        ),
        "azure-native:operationalinsights:Workspace": ArmType(
            "Microsoft.OperationalInsights/workspaces", "{workspaceName}", in_properties=frozenset({"sku"})
        ),
        "azure-native:applicationinsights:Component": ArmType(
            "Microsoft.Insights/components", "{resourceName}", renames=_APP_INSIGHTS_RENAMES
        ),
        "azure-native:monitor:DiagnosticSetting": ArmType(
            "Microsoft.Insights/diagnosticSettings", "{name}", scope="resourceUri"
        ),
        "azure-native:monitor:ActionGroup": ArmType("Microsoft.Insights/actionGroups", "{actionGroupName}"),
        "azure-native:monitor:MetricAlert": ArmType("Microsoft.Insights/metricAlerts", "{ruleName}"),
        "azure-native:monitor:ScheduledQueryRule": ArmType(
            "Microsoft.Insights/scheduledQueryRules", "{ruleName}"
        ),
        "azure-native:authorization:PolicyAssignment": ArmType(
            "Microsoft.Authorization/policyAssignments", "{policyAssignmentName}", scope="scope"
        ),
        "azure-native:monitor:DataCollectionRule": ArmType(
            "Microsoft.Insights/dataCollectionRules", "{dataCollectionRuleName}"
        ),
        "azure-native:monitor:DataCollectionRuleAssociation": ArmType(
            "Microsoft.Insights/dataCollectionRuleAssociations", "{associationName}", scope="resourceUri"
        ),
        "azure-native:consumption:Budget": ArmType(
            "Microsoft.Consumption/budgets", "{budgetName}", scope="scope"
        ),
        "azure-native:keyvault:Vault": ArmType("Microsoft.KeyVault/vaults", "{vaultName}"),
        "azure-native:keyvault:Secret": ArmType(
            "Microsoft.KeyVault/vaults/secrets", "{vaultName}/{secretName}"
        ),
        "azure-native:keyvault:Key": ArmType("Microsoft.KeyVault/vaults/keys", "{vaultName}/{keyName}"),
        # Models.
        "azure-native:cognitiveservices:Account": ArmType(
            "Microsoft.CognitiveServices/accounts", "{accountName}"
        ),
        "azure-native:cognitiveservices:RaiPolicy": ArmType(
            "Microsoft.CognitiveServices/accounts/raiPolicies", "{accountName}/{raiPolicyName}"
        ),
        "azure-native:cognitiveservices:Deployment": ArmType(
            "Microsoft.CognitiveServices/accounts/deployments", "{accountName}/{deploymentName}"
        ),
        # State and knowledge.
        "azure-native:cosmosdb:DatabaseAccount": ArmType(
            "Microsoft.DocumentDB/databaseAccounts", "{accountName}"
        ),
        "azure-native:cosmosdb:SqlResourceSqlDatabase": ArmType(
            "Microsoft.DocumentDB/databaseAccounts/sqlDatabases", "{accountName}/{databaseName}"
        ),
        "azure-native:cosmosdb:SqlResourceSqlContainer": ArmType(
            "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers",
            "{accountName}/{databaseName}/{containerName}",
        ),
        "azure-native:cosmosdb:SqlResourceSqlRoleAssignment": ArmType(
            "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments", "{accountName}/{roleAssignmentId}"
        ),
        "azure-native:search:Service": ArmType("Microsoft.Search/searchServices", "{searchServiceName}"),
        "azure-native:storage:StorageAccount": ArmType(
            "Microsoft.Storage/storageAccounts", "{accountName}", renames=_STORAGE_ACCOUNT_RENAMES
        ),
        "azure-native:storage:BlobServiceProperties": ArmType(
            "Microsoft.Storage/storageAccounts/blobServices", "{accountName}/{blobServicesName}"
        ),
        "azure-native:storage:BlobContainer": ArmType(
            "Microsoft.Storage/storageAccounts/blobServices/containers",
            "{accountName}/default/{containerName}",
        ),
        "azure-native:storage:QueueServiceProperties": ArmType(
            "Microsoft.Storage/storageAccounts/queueServices", "{accountName}/default"
        ),
        "azure-native:storage:Queue": ArmType(
            "Microsoft.Storage/storageAccounts/queueServices/queues", "{accountName}/default/{queueName}"
        ),
        "azure-native:dbforpostgresql:Server": ArmType(
            "Microsoft.DBforPostgreSQL/flexibleServers", "{serverName}"
        ),
        # Serverless compute.
        "azure-native:web:AppServicePlan": ArmType("Microsoft.Web/serverfarms", "{name}"),
        "azure-native:web:WebApp": ArmType("Microsoft.Web/sites", "{name}"),
        "azure-native:web:WebAppFtpAllowed": ArmType(
            "Microsoft.Web/sites/basicPublishingCredentialsPolicies", "{name}/ftp"
        ),
        "azure-native:web:WebAppScmAllowed": ArmType(
            "Microsoft.Web/sites/basicPublishingCredentialsPolicies", "{name}/scm"
        ),
        "azure-native:web:WebAppApplicationSettings": ArmType(
            "Microsoft.Web/sites/config", "{name}/appsettings"
        ),
        "azure-native:app:ManagedEnvironment": ArmType(
            "Microsoft.App/managedEnvironments", "{environmentName}"
        ),
        "azure-native:app:ContainerApp": ArmType("Microsoft.App/containerApps", "{containerAppName}"),
        # Gateway and messaging (foundation).
        "azure-native:apimanagement:ApiManagementService": ArmType(
            "Microsoft.ApiManagement/service", "{serviceName}"
        ),
        "azure-native:apimanagement:Api": ArmType(
            "Microsoft.ApiManagement/service/apis", "{serviceName}/{apiId}"
        ),
        "azure-native:apimanagement:ApiPolicy": ArmType(
            "Microsoft.ApiManagement/service/apis/policies", "{serviceName}/{apiId}/{policyId}"
        ),
        "azure-native:apimanagement:Policy": ArmType(
            "Microsoft.ApiManagement/service/policies", "{serviceName}/{policyId}"
        ),
        "azure-native:apimanagement:ApiOperation": ArmType(
            "Microsoft.ApiManagement/service/apis/operations", "{serviceName}/{apiId}/{operationId}"
        ),
        "azure-native:apimanagement:Diagnostic": ArmType(
            "Microsoft.ApiManagement/service/diagnostics", "{serviceName}/{diagnosticId}"
        ),
        "azure-native:apimanagement:ProductApiLink": ArmType(
            "Microsoft.ApiManagement/service/products/apiLinks", "{serviceName}/{productId}/{apiLinkId}"
        ),
        "azure-native:apimanagement:Backend": ArmType(
            "Microsoft.ApiManagement/service/backends", "{serviceName}/{backendId}"
        ),
        "azure-native:apimanagement:Logger": ArmType(
            "Microsoft.ApiManagement/service/loggers", "{serviceName}/{loggerId}"
        ),
        "azure-native:apimanagement:NamedValue": ArmType(
            "Microsoft.ApiManagement/service/namedValues", "{serviceName}/{namedValueId}"
        ),
        "azure-native:apimanagement:Product": ArmType(
            "Microsoft.ApiManagement/service/products", "{serviceName}/{productId}"
        ),
        "azure-native:apimanagement:Subscription": ArmType(
            "Microsoft.ApiManagement/service/subscriptions", "{serviceName}/{sid}"
        ),
        "azure-native:applicationinsights:Workbook": ArmType(
            "Microsoft.Insights/workbooks", "{resourceName}"
        ),
        "azure-native:servicebus:Namespace": ArmType("Microsoft.ServiceBus/namespaces", "{namespaceName}"),
        "azure-native:servicebus:Queue": ArmType(
            "Microsoft.ServiceBus/namespaces/queues", "{namespaceName}/{queueName}"
        ),
        "azure-native:servicebus:Topic": ArmType(
            "Microsoft.ServiceBus/namespaces/topics", "{namespaceName}/{topicName}"
        ),
        "azure-native:servicebus:Subscription": ArmType(
            "Microsoft.ServiceBus/namespaces/topics/subscriptions",
            "{namespaceName}/{topicName}/{subscriptionName}",
        ),
        "azure-native:servicebus:NamespaceNetworkRuleSet": ArmType(
            "Microsoft.ServiceBus/namespaces/networkRuleSets", "{namespaceName}/default"
        ),
        # Knowledge source events.
        "azure-native:eventgrid:SystemTopic": ArmType(
            "Microsoft.EventGrid/systemTopics", "{systemTopicName}"
        ),
        "azure-native:eventgrid:SystemTopicEventSubscription": ArmType(
            "Microsoft.EventGrid/systemTopics/eventSubscriptions", "{systemTopicName}/{eventSubscriptionName}"
        ),
        # Containers and private networking (enterprise).
        "azure-native:containerservice:ManagedCluster": ArmType(
            "Microsoft.ContainerService/managedClusters", "{resourceName}"
        ),
        "azure-native:containerservice:AgentPool": ArmType(
            "Microsoft.ContainerService/managedClusters/agentPools", "{resourceName}/{agentPoolName}"
        ),
        "azure-native:containerregistry:Registry": ArmType(
            "Microsoft.ContainerRegistry/registries", "{registryName}"
        ),
        "azure-native:network:VirtualNetwork": ArmType(
            "Microsoft.Network/virtualNetworks", "{virtualNetworkName}"
        ),
        "azure-native:network:Subnet": ArmType(
            "Microsoft.Network/virtualNetworks/subnets", "{virtualNetworkName}/{subnetName}"
        ),
        "azure-native:network:NetworkSecurityGroup": ArmType(
            "Microsoft.Network/networkSecurityGroups", "{networkSecurityGroupName}"
        ),
        "azure-native:network:PrivateEndpoint": ArmType(
            "Microsoft.Network/privateEndpoints", "{privateEndpointName}"
        ),
        "azure-native:network:PrivateDnsZoneGroup": ArmType(
            "Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
            "{privateEndpointName}/{privateDnsZoneGroupName}",
        ),
        "azure-native:privatedns:PrivateZone": ArmType(
            "Microsoft.Network/privateDnsZones", "{privateZoneName}"
        ),
        "azure-native:privatedns:VirtualNetworkLink": ArmType(
            "Microsoft.Network/privateDnsZones/virtualNetworkLinks",
            "{privateZoneName}/{virtualNetworkLinkName}",
        ),
    }
)
