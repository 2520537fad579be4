"""``ResourceGraph.indexed``: the same answers as the graph, from indexes, and never stale."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from core.graph import Resource, ResourceGraph
from core.stacks import available_stacks
from policies.rules import all_rules, evaluate, load_context
from policies.rules.evaluate import judge, stack_resource

STACKS = available_stacks()


@pytest.mark.parametrize("stack", STACKS)
def test_an_indexed_graph_answers_every_lookup_as_the_graph_does(
    stack: str, stack_graph: Callable[[str], ResourceGraph]
) -> None:
    graph = stack_graph(stack)
    indexed = graph.indexed()
    assert (indexed.stack, indexed.project, indexed.resources) == (graph.stack, graph.project, graph.resources)
    for type_ in {r.type for r in graph} | {"aws:nothing/such:Type"}:
        assert indexed.of_type(type_) == graph.of_type(type_)
    for resource in graph:
        assert indexed.by_urn(resource.urn) is graph.by_urn(resource.urn)
    with pytest.raises(KeyError):
        indexed.by_urn("urn:pulumi:nothing")


def test_changing_the_graph_later_leaves_the_indexed_copy_as_it_was() -> None:
    role = Resource(urn="urn:a", type="aws:iam/role:Role", name="a", custom=True)
    graph = ResourceGraph(stack="s", project="p", resources=[role])
    indexed = graph.indexed()
    graph.resources.append(dataclasses.replace(role, urn="urn:b", name="b"))
    graph.resources[0] = dataclasses.replace(role, inputs={"name": "changed"})
    assert indexed.of_type(role.type) == [role] and indexed.by_urn("urn:a") is role
    indexed.of_type(role.type).clear()  # a caller's list is its own
    assert indexed.of_type(role.type) == [role]


def test_a_derived_value_is_computed_once_on_an_indexed_graph_and_each_time_on_a_graph() -> None:
    graph = ResourceGraph(stack="s", project="p", resources=[])
    calls: list[ResourceGraph] = []

    def count(seen: ResourceGraph) -> int:
        calls.append(seen)
        return len(calls)

    indexed = graph.indexed()
    assert [indexed.derived(count), indexed.derived(count)] == [1, 1]
    assert [graph.derived(count), graph.derived(count)] == [2, 3]
    assert calls[0] is indexed and indexed.indexed() is indexed


@pytest.mark.parametrize("stack", STACKS)
def test_evaluation_finds_what_every_rule_judging_every_resource_finds(
    stack: str, stack_graph: Callable[[str], ResourceGraph]
) -> None:
    """The per-type selection and the indexed graph change nothing: the findings are those of the
    definition, each rule asked of each resource of the plain graph, in the same order."""
    graph = stack_graph(stack)
    context = load_context(stack)
    expected = [
        judge(rule, resource, graph, context)
        for resource in [stack_resource(graph), *graph.cloud_resources()]
        for rule in all_rules()
        if rule.applies_to(resource, context.stage)
    ]
    assert expected and evaluate(graph, context) == expected
