"""AWS (pulumi-aws) as a first preview answers: physical names, ids and ARNs shaped like the real ones.

Under plain mocks every ``arn`` is unknown, so an IAM policy built from ARNs would be exported as
``<unknown>`` and pass every check without being checked. This profile gives each resource the outputs
AWS derives from names the program already knows - the ARN, the invoke ARN, the queue URL, the API
endpoint - in the exact formats AWS uses, for the account ``123456789012`` (AWS's documentation account)
in the stack's region. Autonamed resources get Pulumi's autoname (``<name>-<7 hex>``), known in a real
preview too. Types not listed here keep their computed outputs unknown, as a preview would.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks

ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
PARTITION = "aws"

Outputs = Callable[["_Named"], dict[str, Any]]


@dataclass(frozen=True)
class _Named:
    """What an ARN is made of: the physical name, a stable token for generated ids, region and account."""

    name: str
    token: str
    region: str
    inputs: Mapping[str, Any]

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        return f"arn:{PARTITION}:{service}:{self.region if regional else ''}:{ACCOUNT}:{resource}"

    def generated(self, length: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
        """An id the service generates (an API id, a key id), stable for one program and name."""
        digest = hashlib.sha256(self.token.encode()).digest()
        return "".join(alphabet[byte % len(alphabet)] for byte in digest[:length])

    def uuid(self) -> str:
        hexdigits = hashlib.sha256(self.token.encode()).hexdigest()
        return f"{hexdigits[:8]}-{hexdigits[8:12]}-{hexdigits[12:16]}-{hexdigits[16:20]}-{hexdigits[20:32]}"


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
    "aws:lambda/alias:Alias": ("name", _alias),
    "aws:apigatewayv2/authorizer:Authorizer": (None, _generated_id),
    "aws:apigatewayv2/integration:Integration": (None, _generated_id),
    "aws:apigatewayv2/route:Route": (None, _generated_id),
    "aws:sns/topicSubscription:TopicSubscription": (
        None,
        lambda n: {"arn": f"{n.inputs.get('topic', '')}:{n.uuid()}"},
    ),
    "aws:iam/rolePolicy:RolePolicy": ("name", lambda n: {"id": f"{n.inputs.get('role', '')}:{n.name}"}),
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

    def invoke(self, token: str, _args: Mapping[str, Any]) -> dict[str, Any] | None:
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
