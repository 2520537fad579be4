"""The AWS foundation as planned: each role's exact statements, who may send to and receive from which
queue, the gateway's authorizer, usage plans and firewall, the knowledge index in its VPC, and settings
the runtime itself accepts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from graph_queries import by_name, runtime_catalog

from agent_runtime.governance.budget_rules import parse_rules
from agent_runtime.hosting import SWEEP_EVENT
from agent_runtime.settings import GatewayAuthorizerSettings
from agentstage.diagram import architecture
from core.graph import ResourceGraph

Graphs = Callable[[str], ResourceGraph]
STACK = "foundation-aws-staging"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"
QUEUE = "aws:sqs/queue:Queue"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
PERMISSION = "aws:lambda/permission:Permission"
RUNTIMES = ("orchestrator", "research", "analyst")


def arn(service: str, resource: str, *, regional: bool = True) -> str:
    return f"arn:aws:{service}:{REGION if regional else ''}:{ACCOUNT}:{resource}"


def queue_arn(name: str) -> str:
    return arn("sqs", f"ags-stg-{name}")


def grants(graph: ResourceGraph, role: str) -> dict[str, list[dict[str, Any]]]:
    """Inline policy name -> its statements, of role ``ags-stg-<role>``."""
    return {
        p.inputs["name"]: json.loads(p.inputs["policy"])["Statement"]
        for p in graph.of_type(ROLE_POLICY)
        if p.inputs["role"] == f"ags-stg-{role}"
    }


def actions_on(graph: ResourceGraph, role: str, action: str) -> set[str]:
    """Every resource ``role`` may call ``action`` on."""
    found: set[str] = set()
    for statements in grants(graph, role).values():
        for statement in statements:
            if action in statement["Action"]:
                resources = statement["Resource"]
                found |= {resources} if isinstance(resources, str) else set(resources)
    return found


def environment(graph: ResourceGraph, function: str) -> dict[str, str]:
    return by_name(graph, FUNCTION, f"{function}-function").inputs["environment"]["variables"]


@pytest.fixture(scope="module")
def graph(stack_graph: Graphs) -> ResourceGraph:
    return stack_graph(STACK)


def test_no_iam_document_holds_an_unknown_value(graph: ResourceGraph) -> None:
    for resource in graph.cloud_resources():
        for key in ("policy", "assumeRolePolicy"):
            document = resource.inputs.get(key)
            if isinstance(document, str) and resource.type.startswith("aws:"):
                for statement in json.loads(document)["Statement"]:
                    resources = statement.get("Resource", [])
                    for value in [resources] if isinstance(resources, str) else resources:
                        assert value == "*" or value.startswith("arn:aws:"), (resource.name, value)


def test_each_runtime_receives_from_its_own_queue_only_and_only_the_orchestrator_sends_to_agents(
    graph: ResourceGraph,
) -> None:
    for name in RUNTIMES:
        assert actions_on(graph, name, "sqs:ReceiveMessage") == {queue_arn(f"tasks-{name}")}, name
        assert actions_on(graph, name, "sqs:DeleteMessage") == {queue_arn(f"tasks-{name}")}, name
    assert actions_on(graph, "orchestrator", "sqs:SendMessage") == {
        *(queue_arn(f"tasks-{name}") for name in RUNTIMES),
        queue_arn("tasks-orchestrator-dlq"),
    }
    for agent in ("research", "analyst"):
        # Its own queue (a deferred task is sent again) and its dead letters: no other agent's queue.
        assert actions_on(graph, agent, "sqs:SendMessage") == {
            queue_arn(f"tasks-{agent}"),
            queue_arn(f"tasks-{agent}-dlq"),
        }
    assert actions_on(graph, "ingest", "sqs:ReceiveMessage") == {queue_arn("knowledge-ingest")}
    assert actions_on(graph, "authorizer", "sqs:SendMessage") == set()


def test_each_role_holds_exactly_its_grants(graph: ResourceGraph) -> None:
    runtime = {
        "bedrock-invoke",
        "kms-use",
        "logs-write",
        "secrets-read",
        "state-data",
        "xray-write",
        "queues-send",
    }
    assert set(grants(graph, "orchestrator")) == runtime | {"queue-receive-tasks-orchestrator"}
    assert set(grants(graph, "analyst")) == runtime | {"queue-receive-tasks-analyst"}
    assert set(grants(graph, "research")) == runtime | {
        "queue-receive-tasks-research",
        "database-connect",
        "vpc-network-interfaces",
    }
    assert set(grants(graph, "ingest")) == {
        "bedrock-invoke",
        "kms-use",
        "logs-write",
        "xray-write",
        "documents-read",
        "queue-receive-knowledge-ingest",
        "database-connect",
        "vpc-network-interfaces",
    }, "no state tables, no settings secret, no task queue"
    assert set(grants(graph, "authorizer")) == {"kms-use", "logs-write", "xray-write"}
    assert not graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"), "no managed policies"


def test_each_runtime_may_call_its_own_model_and_the_embeddings_only(graph: ResourceGraph) -> None:
    embeddings = f"arn:aws:bedrock:{REGION}::foundation-model/amazon.titan-embed-text-v2:0"

    def profile(model: str) -> str:
        return arn("bedrock", f"inference-profile/{model}")

    expected = {
        "orchestrator": {embeddings, profile("eu.amazon.nova-pro-v1:0"), "arn:aws:bedrock:*::foundation-model/amazon.nova-pro-v1:0"},
        "research": {embeddings, profile("eu.amazon.nova-pro-v1:0"), "arn:aws:bedrock:*::foundation-model/amazon.nova-pro-v1:0"},
        "analyst": {embeddings, profile("eu.amazon.nova-lite-v1:0"), "arn:aws:bedrock:*::foundation-model/amazon.nova-lite-v1:0"},
        "ingest": {embeddings},
    }  # fmt: skip
    for role, models in expected.items():
        assert actions_on(graph, role, "bedrock:InvokeModel") == models, role


def test_the_knowledge_index_has_one_writer_and_readers_connect_as_its_reader(graph: ResourceGraph) -> None:
    [writer] = actions_on(graph, "ingest", "rds-db:connect")
    [reader] = actions_on(graph, "research", "rds-db:connect")
    cluster = writer.removeprefix(arn("rds-db", "dbuser:")).split("/")[0]
    assert cluster.startswith("cluster-") and len(cluster) == len("cluster-") + 26
    assert (writer, reader) == tuple(
        arn("rds-db", f"dbuser:{cluster}/agentstage_{u}") for u in ("writer", "reader")
    )
    for name in ("orchestrator", "analyst"):
        assert actions_on(graph, name, "rds-db:connect") == set(), name
        assert environment(graph, name)["AGENTSTAGE_KNOWLEDGE_BACKEND"] == "none"
    research, ingest = environment(graph, "research"), environment(graph, "ingest")
    assert "user=agentstage_reader" in research["AGENTSTAGE_POSTGRES_DSN"]
    assert "user=agentstage_writer" in ingest["AGENTSTAGE_POSTGRES_DSN"]
    for settings in (research, ingest):
        assert settings["AGENTSTAGE_KNOWLEDGE_BACKEND"] == "postgres"
        assert settings["AGENTSTAGE_POSTGRES_IAM_AUTH"] == "true"
        assert "password" not in settings["AGENTSTAGE_POSTGRES_DSN"]
    assert ingest["AGENTSTAGE_KNOWLEDGE_MANAGE_INDEX"] == "true"
    assert research.get("AGENTSTAGE_KNOWLEDGE_MANAGE_INDEX", "false") == "false"
    assert ingest["AGENTSTAGE_KNOWLEDGE_SOURCE"] == f"s3://ags-stg-documents-{ACCOUNT}"
    assert ingest["AGENTSTAGE_INGEST_QUEUE"] == "ags-stg-knowledge-ingest"


def test_only_the_functions_that_reach_the_index_run_in_the_vpc(graph: ResourceGraph) -> None:
    placed = {f.name.removesuffix("-function") for f in graph.of_type(FUNCTION) if f.inputs.get("vpcConfig")}
    assert placed == {"research", "ingest", "knowledge-bootstrap"}
    assert not graph.of_type("aws:ec2/internetGateway:InternetGateway")
    assert not graph.of_type("aws:ec2/natGateway:NatGateway")
    interface = {
        e.inputs["serviceName"].rsplit(".", 1)[-1]
        for e in graph.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if e.inputs.get("vpcEndpointType") == "Interface"
    }
    assert interface == {"bedrock-runtime", "sqs", "secretsmanager"}


def test_every_queue_has_a_dead_letter_queue_and_outlives_its_consumers_deadline(
    graph: ResourceGraph,
) -> None:
    queues = {q.inputs["name"]: q for q in graph.of_type(QUEUE)}
    main = {name for name in queues if not name.endswith("-dlq")}
    assert main == {f"ags-stg-tasks-{n}" for n in RUNTIMES} | {"ags-stg-knowledge-ingest"}
    key = by_name(graph, "aws:kms/key:Key", "encryption-key").arn
    for name in main:
        redrive = json.loads(queues[name].inputs["redrivePolicy"])
        assert redrive == {"deadLetterTargetArn": arn("sqs", f"{name}-dlq"), "maxReceiveCount": 5}
        assert queues[name].inputs["visibilityTimeoutSeconds"] == 6 * 29
        assert queues[name].inputs["kmsMasterKeyId"] == queues[f"{name}-dlq"].inputs["kmsMasterKeyId"] == key


def test_queue_policies_refuse_every_other_sender(graph: ResourceGraph) -> None:
    policies = {
        p.name: json.loads(p.inputs["policy"])["Statement"]
        for p in graph.of_type("aws:sqs/queuePolicy:QueuePolicy")
    }
    research = {s["Sid"]: s for s in policies["bus-tasks-research-policy"]}
    assert research["OnlyNamedSenders"]["Effect"] == "Deny"
    assert research["OnlyNamedSenders"]["Condition"] == {
        "ArnNotEquals": {
            "aws:PrincipalArn": sorted(
                [
                    arn("iam", "role/ags-stg-orchestrator", regional=False),
                    arn("iam", "role/ags-stg-research", regional=False),
                ]
            )
        }
    }
    ingest = {s["Sid"]: s for s in policies["bus-knowledge-ingest-policy"]}
    bucket = f"arn:aws:s3:::ags-stg-documents-{ACCOUNT}"
    assert ingest["SourceSends"]["Principal"] == {"Service": "s3.amazonaws.com"}
    assert ingest["SourceSends"]["Condition"]["ArnEquals"] == {"aws:SourceArn": bucket}
    assert ingest["OnlySourceSends"]["Condition"] == {"ArnNotEquals": {"aws:SourceArn": bucket}}
    assert all(any(s["Sid"] == "TlsOnly" for s in statements) for statements in policies.values())


def test_each_queue_triggers_its_own_function_reporting_failures_per_message(graph: ResourceGraph) -> None:
    handlers = {
        "orchestrator": "lambda_handler.main",
        "research": "lambda_handler.tasks",
        "analyst": "lambda_handler.tasks",
        "ingest": "lambda_handler.documents",
        "authorizer": "aws_authorizer.handler",
    }
    for name, handler in handlers.items():
        assert by_name(graph, FUNCTION, f"{name}-function").inputs["handler"] == handler
    mappings = {
        m.inputs["eventSourceArn"]: m.inputs
        for m in graph.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    }
    expected = {f"tasks-{n}": n for n in RUNTIMES} | {"knowledge-ingest": "ingest"}
    assert set(mappings) == {queue_arn(queue) for queue in expected}
    for queue, function in expected.items():
        mapping = mappings[queue_arn(queue)]
        assert mapping["functionName"] == arn("lambda", f"function:ags-stg-{function}")
        assert (mapping["batchSize"], mapping["functionResponseTypes"]) == (1, ["ReportBatchItemFailures"])


def test_each_task_consumer_knows_how_many_deliveries_its_queue_allows(graph: ResourceGraph) -> None:
    """A pushed SQS record does not say its queue's maxReceiveCount, and a worker acts on the last delivery
    it will see (after it, SQS moves the message unseen): the function must be told."""
    queues = {q.inputs["name"]: q for q in graph.of_type(QUEUE)}
    for name in RUNTIMES:
        redrive = json.loads(queues[f"ags-stg-tasks-{name}"].inputs["redrivePolicy"])
        told = environment(graph, name)["AGENTSTAGE_BUS_MAX_DELIVERY_COUNT"]
        assert told == str(redrive["maxReceiveCount"]), name


def schedules(graph: ResourceGraph) -> dict[str, list[tuple[Any, Any, Any]]]:
    """Function ARN -> (rule, target, the permission for that rule) of each EventBridge rule invoking it."""
    rules = {r.inputs["name"]: r for r in graph.of_type(EVENT_RULE)}
    found: dict[str, list[tuple[Any, Any, Any]]] = {}
    for target in graph.of_type(EVENT_TARGET):
        rule = rules[target.inputs["rule"]]
        permissions = [
            p
            for p in graph.of_type(PERMISSION)
            if p.inputs.get("sourceArn") == arn("events", f"rule/{rule.inputs['name']}")
        ]
        assert len(permissions) == 1, (
            f"rule {rule.inputs['name']}: one permission to invoke, not {permissions}"
        )
        found.setdefault(target.inputs["arn"], []).append((rule, target, permissions[0]))
    return found


def test_the_orchestrator_is_invoked_every_minute_to_sweep_the_task_queues(graph: ResourceGraph) -> None:
    """No worker loop runs on Lambda: a schedule invokes the orchestrator's function, which sends to every
    task queue, with the event the runtime sweeps on; the permission lets that rule invoke that function,
    nothing else. No agent's function is woken each minute (research's would keep its database awake)."""
    found = schedules(graph)
    functions = {"orchestrator": arn("lambda", "function:ags-stg-orchestrator")}
    assert set(found) == set(functions.values()), "only the orchestrator sweeps"
    queues = json.loads(environment(graph, "orchestrator")["AGENTSTAGE_AGENT_QUEUES"])
    assert set(queues.values()) == {f"ags-stg-tasks-{name}" for name in RUNTIMES} - {
        "ags-stg-tasks-orchestrator"
    }
    for name, function in functions.items():
        [(rule, target, permission)] = found[function]
        assert rule.inputs["name"] == f"ags-stg-{name}-sweep"
        assert rule.inputs["scheduleExpression"] == "rate(1 minute)"
        assert "eventPattern" not in rule.inputs and rule.inputs.get("state", "ENABLED") == "ENABLED"
        assert json.loads(target.inputs["input"]) == SWEEP_EVENT
        assert {k: permission.inputs[k] for k in ("action", "function", "principal", "sourceArn")} == {
            "action": "lambda:InvokeFunction",
            "function": function,
            "principal": "events.amazonaws.com",
            "sourceArn": arn("events", f"rule/ags-stg-{name}-sweep"),
        }
        assert set(permission.inputs) & {"sourceAccount", "qualifier"} == set()
        assert (permission.parent, target.parent, rule.parent) == (rule.parent,) * 3, "the function's own"


def test_every_route_needs_the_token_authorizer_and_a_usage_plan(graph: ResourceGraph) -> None:
    api = by_name(graph, "aws:apigateway/restApi:RestApi", "gateway-api")
    assert api.inputs["apiKeySource"] == "AUTHORIZER"
    authorizer = by_name(graph, "aws:apigateway/authorizer:Authorizer", "gateway-authorizer")
    assert (authorizer.inputs["type"], authorizer.inputs["identitySource"]) == (
        "TOKEN",
        "method.request.header.Authorization",
    )
    methods = graph.of_type("aws:apigateway/method:Method")
    assert len(methods) == 2
    for method in methods:
        assert (method.inputs["authorization"], method.inputs["authorizerId"]) == (
            "CUSTOM",
            authorizer.mock_id,
        )
        assert method.inputs["apiKeyRequired"] is True
    settings = by_name(graph, "aws:apigateway/methodSettings:MethodSettings", "gateway-settings").inputs[
        "settings"
    ]
    assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (50, 100)
    assert settings["dataTraceEnabled"] is False, "execution logs would hold prompts"
    plans = {p.inputs["name"]: p.inputs for p in graph.of_type("aws:apigateway/usagePlan:UsagePlan")}
    assert plans["ags-stg-gateway-default"]["throttleSettings"] == {"burstLimit": 10, "rateLimit": 5}
    [portal] = [plan for name, plan in plans.items() if name != "ags-stg-gateway-default"]
    assert portal["quotaSettings"] == {"limit": 50000, "period": "DAY"}


def test_the_authorizer_selects_each_applications_plan_by_its_api_key(graph: ResourceGraph) -> None:
    settings = environment(graph, "authorizer")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(name, value)
        parsed = GatewayAuthorizerSettings()
    assert parsed.gateway_usage_plans is not None
    assert set(parsed.gateway_usage_plans) == {"*", "4example0portal0client0id00"}
    # pulumi-aws keeps an API key's value secret in the graph; the plans' keys are distinct per plan.
    assert (
        len(graph.of_type("aws:apigateway/apiKey:ApiKey"))
        == len(set(parsed.gateway_usage_plans.values()))
        == 2
    )
    assert not any(name.startswith("AGENTSTAGE_LLM") for name in settings), "it runs no agent"


def test_the_firewall_guards_the_stage_and_the_orchestrator_refuses_what_it_would(
    graph: ResourceGraph,
) -> None:
    stage = by_name(graph, "aws:apigateway/stage:Stage", "gateway-stage")
    association = by_name(graph, "aws:wafv2/webAclAssociation:WebAclAssociation", "firewall-stage")
    acl = by_name(graph, "aws:wafv2/webAcl:WebAcl", "firewall-acl")
    assert (association.inputs["resourceArn"], association.inputs["webAclArn"]) == (stage.arn, acl.arn)
    assert environment(graph, "orchestrator")["AGENTSTAGE_MAX_REQUEST_BYTES"] == str(64 * 1024)


def test_the_runtime_accepts_the_settings_each_function_is_given(graph: ResourceGraph) -> None:
    for name in RUNTIMES:
        settings = environment(graph, name)
        runtime_catalog(settings)
        assert settings["AGENTSTAGE_BUS_BACKEND"] == "sqs"
        assert settings["AGENTSTAGE_TASK_QUEUE"] == f"ags-stg-tasks-{name}"
        assert settings["AGENTSTAGE_TELEMETRY_EXPORTER"] == "emf"
        rules = {rule.name: rule for rule in parse_rules(settings["AGENTSTAGE_BUDGETS"])}
        gateway = rules["gateway-tokens-per-minute"]
        assert (gateway.scope, gateway.window_seconds, gateway.tokens) == ("application", 60, 50_000)
    assert json.loads(environment(graph, "orchestrator")["AGENTSTAGE_AGENT_QUEUES"]) == {
        "research": "ags-stg-tasks-research",
        "analyst": "ags-stg-tasks-analyst",
    }


def test_the_diagram_draws_the_request_path(graph: ResourceGraph) -> None:
    drawing = architecture(graph)
    labels = dict(drawing.nodes)
    edges = {(labels[source], labels[target]) for source, target, _ in drawing.edges}
    path = [
        ("WebFirewall: firewall", "Gateway: gateway"),
        ("Gateway: gateway", "ServerlessAgent: orchestrator"),
        ("ServerlessAgent: orchestrator", "MessageBus: bus"),
        ("MessageBus: bus", "ServerlessAgent: research"),
        ("MessageBus: bus", "ServerlessAgent: analyst"),
        ("ServerlessAgent: research", "Models: models"),
        ("ServerlessAgent: research", "VectorDatabase: knowledge"),
        ("KnowledgeSource: documents", "MessageBus: bus"),
        ("MessageBus: bus", "ServerlessAgent: ingest"),
    ]
    assert [edge for edge in path if edge not in edges] == []


def test_alarms_cover_errors_latency_dead_letters_throttles_and_spend(graph: ResourceGraph) -> None:
    alarms = {a.inputs["name"]: a.inputs for a in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    functions = (*RUNTIMES, "ingest", "authorizer")
    expected = {
        "ags-stg-5xx",
        "ags-stg-api-latency",
        "ags-stg-spend",
        *(f"ags-stg-{f}-{kind}" for f in functions for kind in ("errors", "throttles", "latency")),
        *(f"ags-stg-{q}-dlq" for q in (*(f"tasks-{n}" for n in RUNTIMES), "knowledge-ingest")),
    }
    assert set(alarms) == expected
    topic = by_name(graph, "aws:sns/topic:Topic", "monitoring-alarms")
    assert all(alarm["alarmActions"] == [topic.arn] for alarm in alarms.values())
    assert topic.inputs["kmsMasterKeyId"] == by_name(graph, "aws:kms/key:Key", "encryption-key").arn
    api = alarms["ags-stg-api-latency"]
    assert (api["dimensions"], api["threshold"]) == ({"ApiName": "ags-stg-gateway", "Stage": "live"}, 30_000)


def test_requests_without_a_token_end_at_the_gateway(graph: ResourceGraph) -> None:
    validator = by_name(graph, "aws:apigateway/requestValidator:RequestValidator", "gateway-validator")
    assert validator.inputs["validateRequestParameters"] is True
    for method in graph.of_type("aws:apigateway/method:Method"):
        assert method.inputs["requestParameters"] == {"method.request.header.Authorization": True}
        assert method.inputs["requestValidatorId"] == validator.mock_id


def test_the_readme_states_the_concurrency_the_stage_reserves(graph: ResourceGraph) -> None:
    """Lambda keeps 100 of an account's concurrency unreserved: the quota the README asks for is that
    plus what the stage's functions reserve."""
    reserved = sum(f.inputs.get("reservedConcurrentExecutions", 0) for f in graph.of_type(FUNCTION))
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"quota must be at least {100 + reserved}" in " ".join(readme.split())
