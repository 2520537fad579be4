"""AWS (pulumi-aws) as a first preview answers: physical names, ids and ARNs shaped like the real ones.

Under plain mocks every ``arn`` is unknown, so an IAM policy built from ARNs would be exported as
``<unknown>`` and pass every check without being checked. This profile gives each resource the outputs
AWS derives from names the program already knows - the ARN, the invoke ARN, the queue URL, the API
endpoint - in the exact formats AWS uses, for the account ``123456789012`` (AWS's documentation account)
in the stack's region. Autonamed resources get Pulumi's autoname (``<name>-<7 hex>``), known in a real
preview too. Types not listed here keep their computed outputs unknown, as a preview would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks

ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
PARTITION = "aws"

Outputs = Callable[["_Named"], dict[str, Any]]
HEX = string.digits + "abcdef"
LOWER = string.ascii_lowercase + string.digits
UPPER = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class _Named:
    """What an ARN is made of: the physical name, a stable token for generated ids, region and account."""

    name: str
    token: str
    region: str
    inputs: Mapping[str, Any]

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        return f"arn:{PARTITION}:{service}:{self.region if regional else ''}:{ACCOUNT}:{resource}"

    def generated(self, length: int, alphabet: str = LOWER, *, salt: str = "") -> str:
        """An id the service generates (an API id, a key id), stable for one program and name; ``salt``
        tells apart several ids of one resource."""
        return _stable(self._seed(salt), length, alphabet)

    def uuid(self, *, salt: str = "") -> str:
        hexdigits = hashlib.sha256(self._seed(salt).encode()).hexdigest()
        return f"{hexdigits[:8]}-{hexdigits[8:12]}-{hexdigits[12:16]}-{hexdigits[16:20]}-{hexdigits[20:32]}"

    def text(self, key: str) -> str:
        """An input as text (empty when absent)."""
        return str(self.inputs.get(key) or "")

    def _seed(self, salt: str) -> str:
        return f"{self.token}#{salt}" if salt else self.token


def _stable(seed: str, length: int, alphabet: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:length])


def _lambda(n: _Named) -> dict[str, Any]:
    arn = n.arn("lambda", f"function:{n.name}")
    invoke = f"arn:{PARTITION}:apigateway:{n.region}:lambda:path/2015-03-31/functions/{arn}/invocations"
    return {"arn": arn, "invokeArn": invoke, "qualifiedArn": f"{arn}:$LATEST", "version": "$LATEST"}


def _api(n: _Named) -> dict[str, Any]:
    api_id = n.generated(10)
    return {
        "id": api_id,
        "apiEndpoint": f"https://{api_id}.execute-api.{n.region}.amazonaws.com",
        "executionArn": n.arn("execute-api", api_id),
        "arn": f"arn:{PARTITION}:apigateway:{n.region}::/apis/{api_id}",
    }


def _stage(n: _Named) -> dict[str, Any]:
    api_id = str(n.inputs.get("apiId", ""))
    path = "" if n.name == "$default" else n.name
    return {
        "invokeUrl": f"https://{api_id}.execute-api.{n.region}.amazonaws.com/{path}",
        "executionArn": n.arn("execute-api", f"{api_id}/{n.name}"),
        "arn": f"arn:{PARTITION}:apigateway:{n.region}::/apis/{api_id}/stages/{n.name}",
    }


def _kms_key(n: _Named) -> dict[str, Any]:
    key_id = n.uuid()
    return {"id": key_id, "keyId": key_id, "arn": n.arn("kms", f"key/{key_id}")}


def _secret(n: _Named) -> dict[str, Any]:
    arn = n.arn("secretsmanager", f"secret:{n.name}-{n.generated(6, string.ascii_letters)}")
    return {"id": arn, "arn": arn}


def _queue(n: _Named) -> dict[str, Any]:
    url = f"https://sqs.{n.region}.amazonaws.com/{ACCOUNT}/{n.name}"
    return {"id": url, "url": url, "arn": n.arn("sqs", n.name)}


def _topic(n: _Named) -> dict[str, Any]:
    arn = n.arn("sns", n.name)
    return {"id": arn, "arn": arn}


def _guardrail(n: _Named) -> dict[str, Any]:
    guardrail_id = n.generated(12)
    return {
        "guardrailId": guardrail_id,
        "guardrailArn": n.arn("bedrock", f"guardrail/{guardrail_id}"),
        "version": "DRAFT",
        "status": "READY",
    }


def _table(n: _Named) -> dict[str, Any]:
    arn = n.arn("dynamodb", f"table/{n.name}")
    outputs: dict[str, Any] = {"id": n.name, "arn": arn}
    if n.inputs.get("streamEnabled"):
        outputs["streamArn"] = f"{arn}/stream/2026-01-01T00:00:00.000"
    return outputs


def _bucket(n: _Named) -> dict[str, Any]:
    return {
        "id": n.name,
        "arn": f"arn:{PARTITION}:s3:::{n.name}",
        "bucketDomainName": f"{n.name}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{n.name}.s3.{n.region}.amazonaws.com",
    }


def _repository(n: _Named) -> dict[str, Any]:
    return {
        "arn": n.arn("ecr", f"repository/{n.name}"),
        "registryId": ACCOUNT,
        "repositoryUrl": f"{ACCOUNT}.dkr.ecr.{n.region}.amazonaws.com/{n.name}",
    }


def _alias(n: _Named) -> dict[str, Any]:
    function = str(n.inputs.get("functionName", ""))
    arn = n.arn("lambda", f"function:{function}:{n.name}")
    invoke = f"arn:{PARTITION}:apigateway:{n.region}:lambda:path/2015-03-31/functions/{arn}/invocations"
    return {"arn": arn, "invokeArn": invoke}


def _generated_id(n: _Named) -> dict[str, Any]:
    """Sub-resources AWS names by a short generated id (an authorizer, an integration, a route)."""
    return {"id": n.generated(7)}


# --- API Gateway REST APIs (v1) ------------------------------------------------------------------------


def _rest_api(n: _Named) -> dict[str, Any]:
    api_id = n.generated(10)
    return {
        "id": api_id,
        "rootResourceId": n.generated(10, salt="root"),
        "executionArn": n.arn("execute-api", api_id),
        "arn": f"arn:{PARTITION}:apigateway:{n.region}::/restapis/{api_id}",
    }


def _rest_stage(n: _Named) -> dict[str, Any]:
    api_id = n.text("restApi")
    return {
        "id": f"ags-{api_id}-{n.name}",
        "invokeUrl": f"https://{api_id}.execute-api.{n.region}.amazonaws.com/{n.name}",
        "executionArn": n.arn("execute-api", f"{api_id}/{n.name}"),
        "arn": f"arn:{PARTITION}:apigateway:{n.region}::/restapis/{api_id}/stages/{n.name}",
    }


def _rest_method(prefix: str) -> Outputs:
    """A method or an integration: Terraform's id of the API, resource and HTTP method."""
    return lambda n: {"id": f"{prefix}-{n.text('restApi')}-{n.text('resourceId')}-{n.text('httpMethod')}"}


def _rest_authorizer(n: _Named) -> dict[str, Any]:
    authorizer_id = n.generated(6)
    api_id = n.text("restApi")
    return {
        "id": authorizer_id,
        "arn": f"arn:{PARTITION}:apigateway:{n.region}::/restapis/{api_id}/authorizers/{authorizer_id}",
    }


def _apigateway_item(collection: str, length: int) -> Outputs:
    """A usage plan or an API key: a generated id under the region's ``/<collection>``."""

    def outputs(n: _Named) -> dict[str, Any]:
        item_id = n.generated(length)
        return {"id": item_id, "arn": f"arn:{PARTITION}:apigateway:{n.region}::/{collection}/{item_id}"}

    return outputs


# --- WAF -----------------------------------------------------------------------------------------------


def _web_acl(n: _Named) -> dict[str, Any]:
    acl_id = n.uuid()
    if n.text("scope") == "CLOUDFRONT":  # CloudFront's web ACLs live in us-east-1, in the "global" scope
        arn = f"arn:{PARTITION}:wafv2:us-east-1:{ACCOUNT}:global/webacl/{n.name}/{acl_id}"
    else:
        arn = n.arn("wafv2", f"regional/webacl/{n.name}/{acl_id}")
    return {"id": acl_id, "arn": arn, "lockToken": n.uuid(salt="lock")}


# --- VPC -----------------------------------------------------------------------------------------------


def _ec2(kind: str, prefix: str) -> Outputs:
    """An EC2 resource: ``<prefix>-<17 hex>`` and ``arn:aws:ec2:<region>:<account>:<kind>/<id>``."""

    def outputs(n: _Named) -> dict[str, Any]:
        resource_id = f"{prefix}-{n.generated(17, HEX)}"
        return {"id": resource_id, "arn": n.arn("ec2", f"{kind}/{resource_id}"), "ownerId": ACCOUNT}

    return outputs


def _vpc(n: _Named) -> dict[str, Any]:
    ids = {
        "defaultSecurityGroupId": f"sg-{n.generated(17, HEX, salt='sg')}",
        "defaultNetworkAclId": f"acl-{n.generated(17, HEX, salt='acl')}",
        "mainRouteTableId": f"rtb-{n.generated(17, HEX, salt='rtb')}",
        "dhcpOptionsId": f"dopt-{n.generated(17, HEX, salt='dopt')}",
    }
    return {**_ec2("vpc", "vpc")(n), **ids, "defaultRouteTableId": ids["mainRouteTableId"]}


def _security_group_rule(n: _Named) -> dict[str, Any]:
    outputs = _ec2("security-group-rule", "sgr")(n)
    return {**outputs, "securityGroupRuleId": outputs["id"]}


def _vpc_endpoint(n: _Named) -> dict[str, Any]:
    outputs = {**_ec2("vpc-endpoint", "vpce")(n), "state": "available"}
    service = n.text("serviceName").removeprefix(f"com.amazonaws.{n.region}.")
    if n.text("vpcEndpointType") == "Gateway":
        # One prefix list per service and region, whichever VPC routes to it.
        outputs["prefixListId"] = f"pl-{_stable(f'{n.region}:{service}', 8, HEX)}"
        return outputs
    endpoint_id = outputs["id"]
    regional = f"{endpoint_id}-{n.generated(8, salt='dns')}.{service}.{n.region}.vpce.amazonaws.com"
    entries = [{"dnsName": regional, "hostedZoneId": "Z" + n.generated(13, UPPER, salt="zone")}]
    if n.inputs.get("privateDnsEnabled"):
        entries.append(
            {
                "dnsName": f"{service}.{n.region}.amazonaws.com",
                "hostedZoneId": "Z" + n.generated(13, UPPER, salt="private"),
            }
        )
    subnets = n.inputs.get("subnetIds") or []
    outputs["dnsEntries"] = entries
    outputs["networkInterfaceIds"] = [f"eni-{n.generated(17, HEX, salt=str(subnet))}" for subnet in subnets]
    return outputs


# --- Aurora --------------------------------------------------------------------------------------------


def _rds_port(n: _Named) -> int:
    return int(n.inputs.get("port") or (5432 if "postgres" in n.text("engine") else 3306))


def _rds_zone(n: _Named) -> str:
    """The DNS label RDS gives every endpoint of one account in one region."""
    return _stable(f"{ACCOUNT}:{n.region}", 12, LOWER)


def _rds_cluster(n: _Named) -> dict[str, Any]:
    domain = f"{_rds_zone(n)}.{n.region}.rds.amazonaws.com"
    outputs: dict[str, Any] = {
        "id": n.name,
        "arn": n.arn("rds", f"cluster:{n.name}"),
        "clusterResourceId": "cluster-" + n.generated(26, UPPER),
        "endpoint": f"{n.name}.cluster-{domain}",
        "readerEndpoint": f"{n.name}.cluster-ro-{domain}",
        "port": _rds_port(n),
        "engineVersionActual": n.text("engineVersion"),
    }
    if n.inputs.get("manageMasterUserPassword"):
        # RDS names the secret it manages rds!cluster-<uuid>; Secrets Manager appends six random characters.
        secret = f"rds!cluster-{n.uuid(salt='secret')}-{n.generated(6, string.ascii_letters, salt='secret')}"
        outputs["masterUserSecrets"] = [
            {
                "secretArn": n.arn("secretsmanager", f"secret:{secret}"),
                "kmsKeyId": n.text("masterUserSecretKmsKeyId"),
                "secretStatus": "active",
            }
        ]
    return outputs


def _rds_instance(n: _Named) -> dict[str, Any]:
    return {
        "id": n.name,
        "arn": n.arn("rds", f"db:{n.name}"),
        "dbiResourceId": "db-" + n.generated(26, UPPER),
        "endpoint": f"{n.name}.{_rds_zone(n)}.{n.region}.rds.amazonaws.com",
        "port": _rds_port(n),
        "engineVersionActual": n.text("engineVersion"),
    }


# --- Lambda, S3 and SQS wiring ---------------------------------------------------------------------------


def _event_source_mapping(n: _Named) -> dict[str, Any]:
    uuid = n.uuid()
    function = n.text("functionName")
    return {
        "id": uuid,
        "uuid": uuid,
        "arn": n.arn("lambda", f"event-source-mapping:{uuid}"),
        "functionArn": function if function.startswith("arn:") else n.arn("lambda", f"function:{function}"),
        "state": "Disabled" if n.inputs.get("enabled") is False else "Enabled",
    }


def _invocation(n: _Named) -> dict[str, Any]:
    """Terraform's id (function, qualifier, md5 of the input); the function's answer is only known once it
    ran: offline it is an empty JSON object."""
    digest = hashlib.md5(n.text("input").encode(), usedforsecurity=False).hexdigest()
    return {
        "id": f"{n.text('functionName')}_{n.text('qualifier') or '$LATEST'}_{digest}",
        "result": json.dumps({}),
    }


def _permission(n: _Named) -> dict[str, Any]:
    statement = n.text("statementId") or "terraform-" + n.generated(26, string.digits)
    return {"id": statement, "statementId": statement}


def _input_as_id(key: str) -> Outputs:
    """Resources whose id is the resource they configure (a bucket's notification, a queue's policy)."""
    return lambda n: {"id": n.text(key)}


# --- EKS -----------------------------------------------------------------------------------------------


def _eks_cluster(n: _Named) -> dict[str, Any]:
    """The API server's DNS name and the OIDC issuer share one generated id, as EKS's do; the certificate
    authority is a base64 PEM; ``vpcConfig`` gains the security group EKS creates for the cluster."""
    cluster_id = n.generated(32, HEX).upper()
    pem = (
        "-----BEGIN CERTIFICATE-----\nMIIC"
        + n.generated(40, string.ascii_letters)
        + "\n-----END CERTIFICATE-----\n"
    )
    vpc_config = dict(n.inputs.get("vpcConfig") or {})
    vpc_config.setdefault("vpcId", f"vpc-{n.generated(17, HEX, salt='vpc')}")
    vpc_config["clusterSecurityGroupId"] = f"sg-{n.generated(17, HEX, salt='sg')}"
    return {
        "id": n.name,
        "arn": n.arn("eks", f"cluster/{n.name}"),
        "endpoint": f"https://{cluster_id}.gr7.{n.region}.eks.amazonaws.com",
        "certificateAuthority": {"data": base64.b64encode(pem.encode()).decode()},
        "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{n.region}.amazonaws.com/id/{cluster_id}"}]}],
        "platformVersion": "eks.1",
        "status": "ACTIVE",
        "vpcConfig": vpc_config,
    }


def _eks_child(kind: str, key: str) -> Outputs:
    """A node group or an add-on: ``<cluster>:<name>`` and ``arn:...:<kind>/<cluster>/<name>/<uuid>``."""

    def outputs(n: _Named) -> dict[str, Any]:
        cluster, name = n.text("clusterName"), n.text(key) or n.name
        return {
            "id": f"{cluster}:{name}",
            "arn": n.arn("eks", f"{kind}/{cluster}/{name}/{n.uuid()}"),
            "status": "ACTIVE",
        }

    return outputs


def _node_group(n: _Named) -> dict[str, Any]:
    """A managed node group, and the Auto Scaling group EKS creates for it: ``eks-<node group>-<uuid>``, the
    uuid being the one that ends the node group's ARN."""
    outputs = _eks_child("nodegroup", "nodeGroupName")(n)
    group = f"eks-{n.text('nodeGroupName') or n.name}-{n.uuid()}"
    outputs["resources"] = [{"autoscalingGroups": [{"name": group}], "remoteAccessSecurityGroupId": ""}]
    return outputs


def _pod_identity_association(n: _Named) -> dict[str, Any]:
    cluster, association = n.text("clusterName"), "a-" + n.generated(17)
    return {
        "id": f"{cluster},{association}",
        "associationId": association,
        "associationArn": n.arn("eks", f"podidentityassociation/{cluster}/{association}"),
    }


def _access_entry(n: _Named) -> dict[str, Any]:
    cluster, principal = n.text("clusterName"), n.text("principalArn")
    role = principal.rsplit("/", 1)[-1]
    return {
        "id": f"{cluster}:{principal}",
        "accessEntryArn": n.arn("eks", f"access-entry/{cluster}/role/{ACCOUNT}/{role}/{n.uuid()}"),
        "type": n.text("type") or "STANDARD",
    }


def _launch_template(n: _Named) -> dict[str, Any]:
    template_id = f"lt-{n.generated(17, HEX)}"
    return {
        "id": template_id,
        "arn": n.arn("ec2", f"launch-template/{template_id}"),
        "latestVersion": 1,
        "defaultVersion": 1,
    }


# --- ECR -----------------------------------------------------------------------------------------------


def _registry_setting(key: str) -> Outputs:
    """Registry-wide settings keyed by a repository prefix (a pull-through cache rule, a creation template):
    the prefix is the id, in this account's registry."""
    return lambda n: {"id": n.text(key), "registryId": ACCOUNT}


# type token -> (the input that holds the physical name, or None when AWS generates the id; outputs)
TYPES: dict[str, tuple[str | None, Outputs]] = {
    "aws:lambda/function:Function": ("name", _lambda),
    "aws:apigatewayv2/api:Api": ("name", _api),
    "aws:apigatewayv2/stage:Stage": ("name", _stage),
    "aws:iam/role:Role": (
        "name",
        lambda n: {
            "id": n.name,
            "arn": n.arn("iam", f"role/{n.name}", regional=False),
            "uniqueId": "AROA" + n.generated(17, string.ascii_uppercase + string.digits),
        },
    ),
    "aws:iam/policy:Policy": ("name", lambda n: {"arn": n.arn("iam", f"policy/{n.name}", regional=False)}),
    "aws:kms/key:Key": (None, _kms_key),
    "aws:kms/alias:Alias": ("name", lambda n: {"id": n.name, "arn": n.arn("kms", n.name)}),
    "aws:dynamodb/table:Table": ("name", _table),
    "aws:secretsmanager/secret:Secret": ("name", _secret),
    "aws:cloudwatch/logGroup:LogGroup": (
        "name",
        lambda n: {"id": n.name, "arn": n.arn("logs", f"log-group:{n.name}")},
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        "name",
        lambda n: {"id": n.name, "arn": n.arn("cloudwatch", f"alarm:{n.name}")},
    ),
    "aws:cloudwatch/eventRule:EventRule": (
        "name",
        lambda n: {"id": n.name, "arn": n.arn("events", f"rule/{n.name}")},
    ),
    "aws:cloudwatch/eventTarget:EventTarget": (
        None,
        lambda n: {"id": f"{n.text('rule')}-{n.text('targetId')}"},
    ),
    "aws:cloudwatch/dashboard:Dashboard": (
        "dashboardName",
        lambda n: {"id": n.name, "dashboardArn": n.arn("cloudwatch", f"dashboard/{n.name}", regional=False)},
    ),
    "aws:sns/topic:Topic": ("name", _topic),
    "aws:sqs/queue:Queue": ("name", _queue),
    "aws:bedrock/guardrail:Guardrail": ("name", _guardrail),
    "aws:bedrock/guardrailVersion:GuardrailVersion": (None, lambda n: {"version": "1"}),
    "aws:budgets/budget:Budget": (
        "name",
        lambda n: {"id": f"{ACCOUNT}:{n.name}", "arn": f"arn:{PARTITION}:budgets::{ACCOUNT}:budget/{n.name}"},
    ),
    "aws:s3/bucketV2:BucketV2": ("bucket", _bucket),
    "aws:s3/bucket:Bucket": ("bucket", _bucket),
    "aws:ecr/repository:Repository": ("name", _repository),
    "aws:ecr/pullThroughCacheRule:PullThroughCacheRule": (None, _registry_setting("ecrRepositoryPrefix")),
    "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate": (None, _registry_setting("prefix")),
    "aws:lambda/alias:Alias": ("name", _alias),
    "aws:apigatewayv2/authorizer:Authorizer": (None, _generated_id),
    "aws:apigatewayv2/integration:Integration": (None, _generated_id),
    "aws:apigatewayv2/route:Route": (None, _generated_id),
    "aws:sns/topicSubscription:TopicSubscription": (
        None,
        lambda n: {"arn": f"{n.inputs.get('topic', '')}:{n.uuid()}"},
    ),
    "aws:iam/rolePolicy:RolePolicy": ("name", lambda n: {"id": f"{n.inputs.get('role', '')}:{n.name}"}),
    # API Gateway REST APIs (v1)
    "aws:apigateway/restApi:RestApi": ("name", _rest_api),
    "aws:apigateway/stage:Stage": ("stageName", _rest_stage),
    "aws:apigateway/deployment:Deployment": (None, lambda n: {"id": n.generated(6)}),
    "aws:apigateway/resource:Resource": (None, lambda n: {"id": n.generated(6)}),
    "aws:apigateway/method:Method": (None, _rest_method("agm")),
    "aws:apigateway/integration:Integration": (None, _rest_method("agi")),
    "aws:apigateway/authorizer:Authorizer": (None, _rest_authorizer),
    "aws:apigateway/usagePlan:UsagePlan": ("name", _apigateway_item("usageplans", 6)),
    "aws:apigateway/apiKey:ApiKey": ("name", _apigateway_item("apikeys", 10)),
    "aws:apigateway/usagePlanKey:UsagePlanKey": (None, lambda n: {"id": n.text("keyId")}),
    "aws:apigateway/account:Account": (None, lambda n: {"id": "api-gateway-account"}),
    # WAF
    "aws:wafv2/webAcl:WebAcl": ("name", _web_acl),
    "aws:wafv2/webAclAssociation:WebAclAssociation": (
        None,
        lambda n: {"id": f"{n.text('webAclArn')},{n.text('resourceArn')}"},
    ),
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": (None, _input_as_id("resourceArn")),
    # VPC
    "aws:ec2/vpc:Vpc": (None, _vpc),
    "aws:ec2/subnet:Subnet": (None, _ec2("subnet", "subnet")),
    "aws:ec2/securityGroup:SecurityGroup": ("name", _ec2("security-group", "sg")),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": (None, _ec2("security-group", "sg")),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (None, _security_group_rule),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (None, _security_group_rule),
    "aws:ec2/vpcEndpoint:VpcEndpoint": (None, _vpc_endpoint),
    "aws:ec2/routeTable:RouteTable": (None, _ec2("route-table", "rtb")),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": (
        None,
        lambda n: {"id": f"rtbassoc-{n.generated(17, HEX)}"},
    ),
    "aws:ec2/flowLog:FlowLog": (None, _ec2("vpc-flow-log", "fl")),
    # Aurora
    "aws:rds/cluster:Cluster": ("clusterIdentifier", _rds_cluster),
    "aws:rds/clusterInstance:ClusterInstance": ("identifier", _rds_instance),
    "aws:rds/subnetGroup:SubnetGroup": (
        "name",
        lambda n: {"id": n.name, "arn": n.arn("rds", f"subgrp:{n.name}")},
    ),
    # Lambda, S3 and SQS wiring
    "aws:lambda/eventSourceMapping:EventSourceMapping": (None, _event_source_mapping),
    "aws:lambda/invocation:Invocation": (None, _invocation),
    "aws:lambda/permission:Permission": (None, _permission),
    "aws:s3/bucketNotification:BucketNotification": (None, _input_as_id("bucket")),
    "aws:sqs/queuePolicy:QueuePolicy": (None, _input_as_id("queueUrl")),
    "aws:sqs/redrivePolicy:RedrivePolicy": (None, _input_as_id("queueUrl")),
    # EKS
    "aws:eks/cluster:Cluster": ("name", _eks_cluster),
    "aws:eks/nodeGroup:NodeGroup": ("nodeGroupName", _node_group),
    "aws:eks/addon:Addon": (None, _eks_child("addon", "addonName")),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": (None, _pod_identity_association),
    "aws:eks/accessEntry:AccessEntry": (None, _access_entry),
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": (
        None,
        lambda n: {"id": f"{n.text('clusterName')}#{n.text('principalArn')}#{n.text('policyArn')}"},
    ),
    "aws:ec2/launchTemplate:LaunchTemplate": ("name", _launch_template),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (
        None,
        lambda n: {"id": f"{n.text('role')}-{n.generated(26, string.digits)}"},
    ),
}


class AwsProfile:
    """ARNs and ids for the account ``123456789012`` in the stack's ``aws:region``."""

    prefixes = ("aws:",)

    def __init__(self, region: str = DEFAULT_REGION) -> None:
        self.region = region

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> AwsProfile:
        return cls(config.get("aws:region") or DEFAULT_REGION)

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        naming, outputs = TYPES.get(args.typ, (None, None))
        name = args.name
        if naming is not None:
            name = str(state.get(naming) or _autoname(args.name, args.typ))
            state[naming] = name
        token = f"{args.typ}::{args.name}"
        if outputs is None:
            return state.get("id") or name, state
        computed = outputs(_Named(name, token, self.region, state))
        state.update(computed)
        return str(computed.get("id") or computed.get("arn") or name), state

    def invoke(self, token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
        answers: dict[str, dict[str, Any]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT,
                "arn": f"arn:{PARTITION}:sts::{ACCOUNT}:assumed-role/agentstage-deployer/offline-plan",
                "userId": "AROAOFFLINEPLAN:offline-plan",
                "id": ACCOUNT,
            },
            "aws:index/getRegion:getRegion": {
                "name": self.region,
                "region": self.region,
                "id": self.region,
                "description": self.region,
                "endpoint": f"ec2.{self.region}.amazonaws.com",
            },
            "aws:index/getPartition:getPartition": {
                "partition": PARTITION,
                "dnsSuffix": "amazonaws.com",
                "reverseDnsPrefix": "com.amazonaws",
                "id": PARTITION,
            },
            "aws:iam/getSessionContext:getSessionContext": {
                "arn": str(args.get("arn") or ""),
                "issuerArn": f"arn:{PARTITION}:iam::{ACCOUNT}:role/agentstage-deployer",
                "issuerId": "AROAOFFLINEPLAN",
                "issuerName": "agentstage-deployer",
                "sessionName": "offline-plan",
                "id": str(args.get("arn") or ""),
            },
            "aws:index/getAvailabilityZones:getAvailabilityZones": {
                "names": [f"{self.region}{zone}" for zone in "abc"],
                "zoneIds": [f"{self.region[:3]}{self.region.split('-')[-1]}-az{n}" for n in (1, 2, 3)],
                "id": self.region,
                "region": self.region,
            },
        }
        return answers.get(token)


def _autoname(logical: str, type_: str) -> str:
    """Pulumi's autoname: the logical name and seven random hex digits (stable here)."""
    return f"{logical}-{hashlib.sha256(f'{type_}::{logical}'.encode()).hexdigest()[:7]}"
