"""StackConfig for the enterprise stage on aws: the EKS cluster (``eks``), agents on it (``kubernetes``, from the
stack's own ECR repository by digest), bring-your-own VPC (``vpc.existing``); every refusal names its key and
the fix, and the config's copies of the components' facts are the components' own."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from core.config import StackConfig, parse_stack_config
from core.config.aws import (
    EKS_DEFAULT_KUBERNETES_VERSION,
    EKS_KUBERNETES_VERSIONS,
    ENTERPRISE_MIN_VPC_PREFIX,
    IMAGE_CACHE_SECRET_PREFIX,
    INTERFACE_SERVICES,
    PARTITION,
    SUBNET_ROLES,
    instance_architecture,
)
from tests.blueprints.test_config import SOURCE, error_for
from tests.blueprints.test_config_aws import ORCHESTRATOR, aws, foundation

ACCOUNT = "123456789012"
DIGEST = "sha256:" + "0123456789abcdef" * 4
# The stack's repository: <namePrefix>-<environment>-<name> (ags, dev in these tests).
IMAGE = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/ags-dev-agents@{DIGEST}"
CREDENTIALS = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:ecr-pullthroughcache/ghcr-AbC123"
OFFICE = "81.2.69.0/24"
"""A public range (the documentation ranges, such as 203.0.113.0/24, are not public to ``ipaddress``)."""
KUBERNETES = {"image": IMAGE, "agents": ["assistant"]}
EKS = {"imageCacheCredentialsArn": CREDENTIALS}
ENTERPRISE_KEYS: dict[str, object] = {
    "blueprint": "enterprise",
    "orchestrator": ORCHESTRATOR,
    "apiGateway": {},
    "kubernetes": KUBERNETES,
    "eks": EKS,
}
EXISTING: dict[str, Any] = {
    "vpcId": "vpc-0123456789abcdef0",
    "cidrs": ["10.80.0.0/16", "100.64.0.0/16"],
    "subnetIds": {
        "lambda": ["subnet-0a000001", "subnet-0a000002"],
        "nodes": ["subnet-0b000001", "subnet-0b000002"],
        "endpoints": ["subnet-0c000001", "subnet-0c000002"],
        "data": ["subnet-0d000001", "subnet-0d000002"],
    },
    "routeTableIds": ["rtb-0e000001", "rtb-0e000002"],
}


def enterprise(**overrides: object) -> dict[str, str]:
    """A minimal enterprise-on-aws stack, with ``overrides``; a ``None`` override removes that key."""
    raw = aws(**{**ENTERPRISE_KEYS, **{k: v for k, v in overrides.items() if v is not None}})
    for key in [k for k, v in overrides.items() if v is None]:
        del raw[f"agentstage:{key}"]
    return raw


def parse(raw: dict[str, str]) -> StackConfig:
    return parse_stack_config(raw, SOURCE)


def with_eks(**keys: object) -> dict[str, str]:
    return enterprise(eks={**EKS, **keys})


def with_kubernetes(**keys: object) -> dict[str, str]:
    return enterprise(kubernetes={**KUBERNETES, **keys})


def with_existing(**keys: object) -> dict[str, str]:
    return enterprise(vpc={"existing": {**EXISTING, **keys}})


# --- the stage parses, and its sections are where they apply -------------------------------------------


def test_a_minimal_enterprise_on_aws_parses_with_the_documented_defaults() -> None:
    config = parse(enterprise())
    assert config.kubernetes is not None and config.eks is not None
    assert config.kubernetes.agents == ("assistant",) and config.kubernetes.image == IMAGE
    assert config.kubernetes.kubernetes_version == EKS_DEFAULT_KUBERNETES_VERSION == "1.33"
    eks = config.eks
    assert eks.instance_types == ("m6i.large",) and eks.ami_type == "AL2023_x86_64_STANDARD"
    assert (eks.min_size, eks.desired_size, eks.max_size, eks.root_volume_gb) == (1, 2, 3, 50)
    assert eks.public_access_cidrs == () and eks.api_client_cidrs == ()
    assert eks.image_cache_credentials_arn == CREDENTIALS
    assert config.vpc is None and config.vector_database is None


def test_a_full_enterprise_on_aws_keeps_what_it_says() -> None:
    config = parse(
        enterprise(
            kubernetes={**KUBERNETES, "kubernetesVersion": "1.31", "maxReplicas": 4, "namespace": "workers"},
            eks={
                **EKS,
                "instanceTypes": ["m7g.large", "c7g.xlarge"],
                "amiType": "AL2023_ARM_64_STANDARD",
                "minSize": 2,
                "desiredSize": 2,
                "maxSize": 6,
                "rootVolumeGb": 100,
                "publicAccessCidrs": [OFFICE],
                "apiClientCidrs": ["10.99.0.0/16"],
            },
            vpc={"cidr": "10.70.0.0/20", "availabilityZones": 3},
            alerts={"dailySpendUsd": 40},
            **{"lambda": {"memoryMb": 2048}},
        )
    )
    assert config.kubernetes is not None and config.kubernetes.kubernetes_version == "1.31"
    assert config.eks is not None and config.eks.instance_types == ("m7g.large", "c7g.xlarge")
    assert config.eks.public_access_cidrs == (OFFICE,)
    assert config.vpc is not None and config.vpc.cidr == "10.70.0.0/20"
    assert config.lambda_function.memory_mb == 2048 and config.alerts is not None


@pytest.mark.parametrize("missing", ["orchestrator", "apiGateway", "budget", "kubernetes", "eks"])
def test_each_required_section_is_named_when_missing(missing: str) -> None:
    assert f"the enterprise blueprint on aws needs agentstage:{missing}" in error_for(
        enterprise(**{missing: None})
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            foundation(eks=EKS),
            (
                "agentstage:eks applies to enterprise on aws, not foundation on aws; remove it or change "
                "agentstage:blueprint / agentstage:cloud"
            ),
        ),
        (
            foundation(kubernetes=KUBERNETES),
            (
                "agentstage:kubernetes applies to enterprise on azure, enterprise on kubernetes, enterprise on aws, "
                "not foundation on aws"
            ),
        ),
        (enterprise(network={}), "agentstage:network applies to enterprise on azure, not enterprise on aws"),
        (
            enterprise(messaging={}),
            "agentstage:messaging applies to foundation on azure, enterprise on azure, not",
        ),
        (enterprise(policy={}), "agentstage:policy applies to enterprise on azure, not enterprise on aws"),
    ],
)
def test_sections_are_refused_where_they_do_not_apply(raw: dict[str, str], message: str) -> None:
    assert message in error_for(raw)


def test_eks_is_refused_on_the_azure_enterprise() -> None:
    from tests.blueprints.test_config_enterprise import enterprise as azure_enterprise

    assert "agentstage:eks applies to enterprise on aws, not enterprise on azure" in error_for(
        azure_enterprise(eks=EKS)
    )


def test_the_aws_checks_of_the_foundation_apply_to_the_enterprise() -> None:
    orchestrator = {k: v for k, v in ORCHESTRATOR.items() if k != "subtaskDeadlineSeconds"}
    assert "agentstage:orchestrator.subtaskDeadlineSeconds (30) must be below" in error_for(
        enterprise(orchestrator=orchestrator)
    )
    assert "agentstage:api.issuer is needed on aws" in error_for(enterprise(api={}))
    assert "agentstage:kubernetes.agents: ghost not in agentstage:agents" in error_for(
        with_kubernetes(agents=["assistant", "ghost"])
    )


def test_the_pilot_and_foundation_on_aws_still_parse() -> None:
    assert parse(aws()).kubernetes is None
    config = parse(foundation(vpc={"cidr": "10.60.0.0/24"}))
    assert config.vpc is not None and config.vpc.existing is None and config.eks is None


# --- kubernetes on aws: the neutral keys, a pinned minor, the stack's image by digest ----------------------


@pytest.mark.parametrize(
    ("key", "value", "instead"),
    [
        (
            "systemPool",
            {"vmSize": "Standard_D2ds_v5"},
            "agentstage:eks.instanceTypes, minSize, desiredSize and maxSize",
        ),
        ("userPool", {"maxCount": 5}, "agentstage:eks.instanceTypes, minSize, desiredSize and maxSize"),
        ("privateCluster", True, "private unless agentstage:eks.publicAccessCidrs lists public ranges"),
        ("adminGroupObjectIds", ["11111111-2222-3333-4444-555555555555"], "an EKS access entry"),
        ("encryptionAtHost", True, "encrypted with the stack's KMS key"),
        ("zoneRedundantRegistry", True, "ECR repository is regional"),
    ],
)
def test_aks_settings_are_refused_and_point_to_their_eks_counterpart(
    key: str, value: object, instead: str
) -> None:
    message = error_for(with_kubernetes(**{key: value}))
    assert f"agentstage:kubernetes.{key} applies to the azure cloud: " in message
    assert instead in message and message.endswith("; remove it")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("kubeconfigContext", "prod"),
        ("serviceAccountAnnotations", {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{ACCOUNT}:role/agents"}),
        ("settingsSecret", "runtime-env"),
    ],
)
def test_own_cluster_settings_are_refused_on_aws(key: str, value: object) -> None:
    message = error_for(with_kubernetes(**{key: value}))
    assert f"agentstage:kubernetes.{key} applies to the kubernetes cloud (your own cluster)" in message
    assert "a Pod Identity role for each agent" in message


@pytest.mark.parametrize("version", ["1.30", "1.34", "1.33.1"])
def test_a_kubernetes_version_without_pinned_add_ons_is_refused(version: str) -> None:
    assert (
        f"agentstage:kubernetes.kubernetesVersion: '{version}' is not a Kubernetes minor the kit pins its EKS "
        "add-ons for (the Cluster Autoscaler, KEDA); use 1.31, 1.32, 1.33, or leave it out for 1.33"
    ) in error_for(with_kubernetes(kubernetesVersion=version))


@pytest.mark.parametrize("version", EKS_KUBERNETES_VERSIONS)
def test_every_pinned_version_is_accepted(version: str) -> None:
    config = parse(with_kubernetes(kubernetesVersion=version))
    assert config.kubernetes is not None and config.kubernetes.kubernetes_version == version


def test_the_versions_are_those_the_add_ons_are_pinned_for() -> None:
    from components.aws import keda
    from components.aws.cluster_autoscaler import RELEASES
    from components.aws.eks import EksClusterArgs

    assert EKS_KUBERNETES_VERSIONS == tuple(sorted(RELEASES)) == keda.KUBERNETES_VERSIONS
    assert EksClusterArgs.__dataclass_fields__["kubernetes_version"].default == EKS_DEFAULT_KUBERNETES_VERSION


def test_an_absent_version_stays_absent_on_azure() -> None:
    from tests.blueprints.test_config_enterprise import enterprise as azure_enterprise

    config = parse(azure_enterprise())
    assert config.kubernetes is not None and config.kubernetes.kubernetes_version is None


EXPECTED_IMAGE = "use <account>.dkr.ecr.eu-west-1.amazonaws.com/ags-dev-<repository>@sha256:<64 hex digits>"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (
            f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/ags-dev-agents:1.4.2",
            "names a tag; on aws agents run images by digest",
        ),
        (f"ghcr.io/acme/agentstage-runtime@{DIGEST}", "is not in the ECR repository this stack creates"),
        (f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com.evil.io/ags-dev-agents@{DIGEST}", "is not in the ECR"),
        (
            f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/ags-dev-agents@{DIGEST}",
            "is in the registry of us-east-1; the stack's repository is in eu-west-1 (agentstage:location)",
        ),
        (
            f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/ags-prod-agents@{DIGEST}",
            (
                "'ags-prod-agents' is not a repository this stack creates, the only one its nodes may pull from: "
                "the stack names its repositories ags-dev-<repository>"
            ),
        ),
    ],
)
def test_the_image_must_be_the_stacks_repository_by_digest(image: str, message: str) -> None:
    refusal = error_for(with_kubernetes(image=image))
    assert "agentstage:kubernetes.image: " in refusal
    assert message in refusal and refusal.endswith(EXPECTED_IMAGE)


def test_the_image_check_follows_the_registrys_naming() -> None:
    """The repository the registry component creates for this stack's context is accepted; its image
    reference is what the config accepts."""
    from components.aws.context import AwsContext

    context = AwsContext(name_prefix="ags", environment="dev", region="eu-west-1", account_id=ACCOUNT)
    url = f"{ACCOUNT}.dkr.ecr.{context.region}.amazonaws.com/{context.name('agents')}"
    config = parse(with_kubernetes(image=f"{url}@{DIGEST}"))
    assert config.kubernetes is not None and config.kubernetes.image == IMAGE


# --- eks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"instanceTypes": ["m7g.large"]},
            (
                "agentstage:eks: instanceTypes[0]: m7g.large is an arm64 type and amiType AL2023_x86_64_STANDARD runs "
                "on x86_64 only: set amiType AL2023_ARM_64_STANDARD, or choose x86_64 instance types"
            ),
        ),
        (
            {"instanceTypes": ["m7g.large", "m6i.large"], "amiType": "AL2023_ARM_64_STANDARD"},
            (
                "instanceTypes[1]: m6i.large is an x86_64 type and amiType AL2023_ARM_64_STANDARD runs on arm64 only: "
                "set amiType AL2023_x86_64_STANDARD"
            ),
        ),
        ({"instanceTypes": []}, "agentstage:eks.instanceTypes: Tuple should have at least 1 item"),
        ({"instanceTypes": ["large"]}, "agentstage:eks.instanceTypes[0]: expected an EC2 instance type"),
        (
            {"instanceTypes": ["m6i.large", "m6i.large"]},
            "agentstage:eks.instanceTypes: m6i.large listed more",
        ),
        ({"amiType": "AL2_x86_64"}, "agentstage:eks.amiType: Input should be 'AL2023_x86_64_STANDARD' or"),
        ({"minSize": 0}, "agentstage:eks.minSize: Input should be greater than or equal to 1"),
        (
            {"minSize": 2, "desiredSize": 1},
            (
                "agentstage:eks: minSize (2), desiredSize (1) and maxSize (3) must satisfy minSize <= desiredSize "
                "<= maxSize"
            ),
        ),
        ({"desiredSize": 4}, "minSize (1), desiredSize (4) and maxSize (3) must satisfy"),
        ({"rootVolumeGb": 10}, "agentstage:eks.rootVolumeGb: Input should be greater than or equal to 20"),
        ({"rootVolumeGb": 600}, "agentstage:eks.rootVolumeGb: Input should be less than or equal to 500"),
        (
            {"publicAccessCidrs": ["0.0.0.0/0"]},
            (
                "agentstage:eks.publicAccessCidrs: '0.0.0.0/0' is the whole internet: anyone could reach the "
                "cluster's API"
            ),
        ),
        (
            {"publicAccessCidrs": ["10.20.0.0/16"]},
            (
                "agentstage:eks.publicAccessCidrs: '10.20.0.0/16' is not a public range: the public endpoint sees "
                "callers' public addresses; networks routed to the VPC reach the private endpoint through apiClientCidrs"
            ),
        ),
        (
            {"publicAccessCidrs": ["81.2.69.7/24"]},
            (
                "agentstage:eks.publicAccessCidrs: '81.2.69.7/24' has host bits set; write its network address "
                "81.2.69.0/24"
            ),
        ),
        (
            {"publicAccessCidrs": ["81.2.69.7"]},
            "'81.2.69.7' is not an IPv4 CIDR <address>/<prefix length>",
        ),
        ({"publicAccessCidrs": ["2001:db8::/32"]}, "'2001:db8::/32' is not an IPv4 CIDR"),
        (
            {"publicAccessCidrs": [f"198.51.{i}.0/24" for i in range(41)]},
            "agentstage:eks.publicAccessCidrs: Tuple should have at most 40 items",
        ),
        (
            {"apiClientCidrs": [OFFICE]},
            (
                f"agentstage:eks.apiClientCidrs: '{OFFICE}' is not a private range: apiClientCidrs are networks "
                "routed to the VPC"
            ),
        ),
        ({"apiClientCidrs": ["10.9.0.0/16", "10.9.0.0/16"]}, "apiClientCidrs: each range may be listed once"),
        ({"nodeCount": 3}, "unknown key 'agentstage:eks.nodeCount'"),
    ],
)
def test_what_the_eks_section_refuses_is_named(keys: dict[str, object], message: str) -> None:
    assert message in error_for(with_eks(**keys))


def test_the_image_cache_credentials_are_required() -> None:
    assert "missing required key 'agentstage:eks.imageCacheCredentialsArn'" in error_for(enterprise(eks={}))


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        (
            "ecr-pullthroughcache/ghcr",
            (
                "agentstage:eks.imageCacheCredentialsArn: 'ecr-pullthroughcache/ghcr' is not a Secrets Manager "
                "secret's full ARN; expected arn:aws:secretsmanager:<region>:<account>:secret:"
                "ecr-pullthroughcache/<name>-<6 characters>"
            ),
        ),
        (CREDENTIALS.removesuffix("-AbC123"), "is not a Secrets Manager secret's full ARN"),
        (CREDENTIALS.replace("arn:aws:", "arn:aws-cn:"), "is not a Secrets Manager secret's full ARN"),
        (CREDENTIALS.replace(":secretsmanager:", ":ssm:"), "is not a Secrets Manager secret's full ARN"),
        (
            CREDENTIALS.replace("ecr-pullthroughcache/", "github/"),
            (
                "the secret 'github/ghcr' must be named 'ecr-pullthroughcache/<name>': ECR reads an upstream "
                "registry's credentials from no other secret"
            ),
        ),
        (
            CREDENTIALS.replace("ecr-pullthroughcache/ghcr", "ecr-pullthroughcache/"),
            "the secret 'ecr-pullthroughcache/' must be named 'ecr-pullthroughcache/<name>'",
        ),
        (
            CREDENTIALS.replace("eu-west-1", "us-east-1"),
            (
                "agentstage:eks.imageCacheCredentialsArn: the secret is in us-east-1, but ECR reads a pull-through "
                "cache's credentials only in the cache's region, the stack's eu-west-1 (agentstage:location)"
            ),
        ),
        (
            CREDENTIALS.replace(ACCOUNT, "210987654321"),
            (
                "agentstage:eks.imageCacheCredentialsArn: the secret is in account 210987654321 and "
                f"agentstage:kubernetes.image in account {ACCOUNT}; both must be the stack's account"
            ),
        ),
    ],
)
def test_the_image_cache_credentials_are_a_cache_secret_of_the_stacks_region_and_account(
    arn: str, message: str
) -> None:
    assert message in error_for(with_eks(imageCacheCredentialsArn=arn))


def test_the_cache_secret_is_one_the_image_cache_component_takes() -> None:
    from components.aws.context import PARTITION as COMPONENTS_PARTITION
    from components.aws.registry import CREDENTIAL_SECRET_PREFIX, ImageCacheArgs

    assert (IMAGE_CACHE_SECRET_PREFIX, PARTITION) == (CREDENTIAL_SECRET_PREFIX, COMPONENTS_PARTITION)
    config = parse(enterprise())
    assert config.eks is not None
    ImageCacheArgs(credential_arns={"ghcr.io": config.eks.image_cache_credentials_arn})


@pytest.mark.parametrize(
    ("instance_type", "architecture"),
    [
        ("m6i.large", "x86_64"),
        ("c7i-flex.xlarge", "x86_64"),
        ("g5.xlarge", "x86_64"),
        ("gr6.4xlarge", "x86_64"),
        ("g4dn.xlarge", "x86_64"),
        ("u-6tb1.56xlarge", "x86_64"),
        ("t4g.medium", "arm64"),
        ("m7g.large", "arm64"),
        ("c7gn.2xlarge", "arm64"),
        ("x2gd.xlarge", "arm64"),
        ("im4gn.large", "arm64"),
        ("is4gen.medium", "arm64"),
        ("g5g.xlarge", "arm64"),
        ("a1.large", "arm64"),
        ("r8g.metal-24xl", "arm64"),
    ],
)
def test_graviton_types_are_told_from_x86(instance_type: str, architecture: str) -> None:
    assert instance_architecture(instance_type) == architecture


def test_the_eks_section_is_what_the_cluster_component_takes() -> None:
    """Every value the config accepts passes EksClusterArgs' own checks (same names, same meanings)."""
    from components.aws.eks import NODE_ENDPOINTS, EksClusterArgs
    from components.aws.network import ROLES

    config = parse(with_eks(publicAccessCidrs=[OFFICE], apiClientCidrs=["10.99.0.0/16"], rootVolumeGb=500))
    assert config.eks is not None and config.kubernetes is not None
    network: Any = SimpleNamespace(interface_services=tuple(NODE_ENDPOINTS))  # all the args' check reads
    fields = {k: v for k, v in config.eks.model_dump().items() if k != "image_cache_credentials_arn"}
    EksClusterArgs(network=network, kubernetes_version=config.kubernetes.kubernetes_version, **fields)
    assert SUBNET_ROLES == ROLES


# --- vpc: the size the enterprise network needs, and bring your own ---------------------------------------


def test_the_enterprise_network_needs_a_vpc_of_a_20_or_larger() -> None:
    message = error_for(enterprise(vpc={"cidr": "10.60.0.0/21"}))
    assert (
        "agentstage:vpc.cidr: '10.60.0.0/21' is too small for the enterprise network: it is cut into 16 subnets "
        "(a /25 each) and the EKS nodes' subnets, where every pod takes an address, need a /24 at least: use a "
        "/20 or larger, e.g. 10.60.0.0/16"
    ) in message


def test_the_smallest_vpc_is_the_network_components() -> None:
    from components.aws.network import ROLES, NetworkArgs

    smallest = f"10.60.0.0/{ENTERPRISE_MIN_VPC_PREFIX}"
    NetworkArgs(cidr=smallest, zones=3, subnet_roles=ROLES).layout()
    with pytest.raises(ValueError, match="subnets need at least a /24"):
        NetworkArgs(cidr=f"10.60.0.0/{ENTERPRISE_MIN_VPC_PREFIX + 1}", subnet_roles=ROLES)
    assert parse(enterprise(vpc={"cidr": smallest})).vpc is not None


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("8.8.0.0/16", "agentstage:vpc.cidr: '8.8.0.0/16' is not a private range; use one inside 10.0.0.0/8"),
        (
            "10.60.1.0/16",
            "agentstage:vpc.cidr: '10.60.1.0/16' has host bits set; write its network address 10.60.0.0/16",
        ),
    ],
)
def test_a_vpc_the_stack_creates_is_a_private_network_address(cidr: str, message: str) -> None:
    assert message in error_for(foundation(vpc={"cidr": cidr}))
    assert message in error_for(enterprise(vpc={"cidr": cidr}))


def test_an_existing_vpc_parses_and_matches_the_network_component() -> None:
    from components.aws.network import ExistingVpc

    endpoints = {"endpointIds": {"sqs": "vpce-0f000001"}, "endpointSecurityGroupIds": ["sg-0f000001"]}
    config = parse(with_existing(**endpoints))
    assert config.vpc is not None and config.vpc.existing is not None
    existing = config.vpc.existing
    assert existing.subnet_ids["nodes"] == ("subnet-0b000001", "subnet-0b000002")
    assert existing.endpoint_ids == {"sqs": "vpce-0f000001"}
    assert existing.cidrs == ("10.80.0.0/16", "100.64.0.0/16")
    ExistingVpc(**existing.model_dump(exclude={"cidrs"}))


def test_an_existing_vpc_is_refused_on_the_foundation() -> None:
    assert (
        "agentstage:vpc.existing applies to enterprise on aws, not foundation on aws: the foundation stage "
        "creates its VPC (agentstage:vpc.cidr, availabilityZones); remove it"
    ) in error_for(foundation(vpc={"existing": EXISTING}))


@pytest.mark.parametrize(
    ("vpc", "message"),
    [
        (
            {"cidr": "10.60.0.0/16", "existing": EXISTING},
            (
                "agentstage:vpc: cidr describe a VPC the stack creates; with existing the VPC and its subnets are "
                "yours: remove them"
            ),
        ),
        (
            {"availabilityZones": 3, "cidr": "10.1.0.0/16", "existing": EXISTING},
            "cidr and availabilityZones describe",
        ),
    ],
)
def test_an_existing_vpc_takes_no_layout(vpc: dict[str, object], message: str) -> None:
    assert message in error_for(enterprise(vpc=vpc))


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"subnetIds": {**EXISTING["subnetIds"], "private": ["subnet-0f000001", "subnet-0f000002"]}},
            (
                "agentstage:vpc.existing: subnetIds needs exactly the roles lambda, nodes, endpoints, data (the "
                "enterprise network's subnets per role); not a role: private"
            ),
        ),
        (
            {"subnetIds": {k: v for k, v in EXISTING["subnetIds"].items() if k != "data"}},
            (
                "subnetIds needs exactly the roles lambda, nodes, endpoints, data (the enterprise network's subnets "
                "per role); missing: data"
            ),
        ),
        (
            {"subnetIds": {**EXISTING["subnetIds"], "nodes": ["subnet-0b000001"]}},
            "agentstage:vpc.existing: subnetIds.nodes: give 2 or more different subnets, one per availability zone",
        ),
        (
            {"subnetIds": {**EXISTING["subnetIds"], "data": ["subnet-0a000001", "subnet-0d000002"]}},
            "agentstage:vpc.existing: subnetIds: subnet-0a000001 listed more than once; a subnet has one role",
        ),
        (
            {"subnetIds": {**EXISTING["subnetIds"], "data": ["subnet-1", "subnet-0d000002"]}},
            (
                "agentstage:vpc.existing.subnetIds.data[0]: expected a subnet id: subnet- and 8 or 17 lowercase "
                "hexadecimal digits"
            ),
        ),
        ({"vpcId": "vpc-XYZ"}, "agentstage:vpc.existing.vpcId: expected a VPC id: vpc- and 8 or 17"),
        ({"cidrs": []}, "agentstage:vpc.existing.cidrs: Tuple should have at least 1 item"),
        (
            {"cidrs": ["10.80.0.0/12"]},
            "agentstage:vpc.existing.cidrs: '10.80.0.0/12' is not a VPC's CIDR block",
        ),
        ({"cidrs": ["10.80.0.0/29"]}, "'10.80.0.0/29' is not a VPC's CIDR block: those are /16 to /28"),
        ({"cidrs": ["10.80.1.0/16"]}, "agentstage:vpc.existing.cidrs: '10.80.1.0/16' has host bits set"),
        (
            {"cidrs": ["10.80.0.0/16", "10.80.0.0/16"]},
            "agentstage:vpc.existing.cidrs: each block may be listed once",
        ),
        ({"routeTableIds": []}, "agentstage:vpc.existing.routeTableIds: Tuple should have at least 1 item"),
        (
            {"routeTableIds": ["rt-0e000001"]},
            "agentstage:vpc.existing.routeTableIds[0]: expected a route table id",
        ),
        (
            {"endpointIds": {"s3": "vpce-0f000001"}, "endpointSecurityGroupIds": ["sg-0f000001"]},
            (
                "agentstage:vpc.existing: endpointIds.s3: s3 is reached through the stack's own gateway endpoint on "
                "routeTableIds; remove it"
            ),
        ),
        (
            {"endpointIds": {"secretmanager": "vpce-0f000001"}, "endpointSecurityGroupIds": ["sg-0f000001"]},
            (
                "agentstage:vpc.existing: endpointIds.secretmanager: not an interface endpoint service the stage "
                "calls (e.g. sqs, bedrock-runtime, ecr.dkr); did you mean secretsmanager?"
            ),
        ),
        ({"endpointIds": {"sqs": "vpce-0f000001"}}, "endpointSecurityGroupIds: give the security groups"),
        ({"endpointSecurityGroupIds": ["sg-0f000001"]}, "endpointSecurityGroupIds: give the security groups"),
        (
            {"endpointIds": {"sqs": "vpce-1"}, "endpointSecurityGroupIds": ["sg-0f000001"]},
            "existing.endpointIds.sqs",
        ),
        ({"subnets": {}}, "unknown key 'agentstage:vpc.existing.subnets'"),
    ],
)
def test_what_an_existing_vpc_refuses_is_named(keys: dict[str, object], message: str) -> None:
    assert message in error_for(with_existing(**keys))


def test_existing_endpoints_are_the_services_a_stage_can_need() -> None:
    from core.aws_endpoints import (
        BEDROCK_AGENT_RUNTIME_ACTIONS,
        BEDROCK_RUNTIME_ACTIONS,
        GATEWAY_SERVICES,
        endpoint_services,
    )

    bedrock = {
        service
        for action in (*BEDROCK_RUNTIME_ACTIONS, *BEDROCK_AGENT_RUNTIME_ACTIONS, "GetFoundationModel")
        for service in endpoint_services(f"bedrock:{action}")
    }
    assert bedrock <= INTERFACE_SERVICES
    assert {"sqs", "secretsmanager", "ecr.api", "ecr.dkr", "eks-auth", "sts", "xray"} <= INTERFACE_SERVICES
    assert not INTERFACE_SERVICES & set(GATEWAY_SERVICES)
