"""DynamoDB for the runtime's state: conversations, vector memory, task records and the budget ledger.

The tables are exactly what the runtime's DynamoDB backends read (their docstrings define the layouts:
``agent_runtime/memory/dynamodb.py``, ``tasks/store_dynamodb.py``, ``governance/ledger_dynamodb.py``),
and the runtime checks the key schema at start. Every table is on-demand (traffic is bursty), sealed
with the stack's key, recoverable to any second of the last 35 days (point-in-time recovery), and in
protected environments refuses deletion. The ledger's expired counters and idempotency records are
removed by TTL.

With a perimeter (the VPC's DynamoDB gateway endpoint, :mod:`components.aws.data_perimeter`) each table
gets a resource policy denying the item actions (:data:`FENCED_ITEM_ACTIONS`, on the table and its
indexes) outside the VPC: items are read and written only by the runtimes, inside the VPC. Table
management and ``DescribeTable`` stay open (the deployer and ``pulumi refresh`` call them from outside),
and TTL expiry and point-in-time recovery are DynamoDB's own work, not requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
from pulumi_aws import dynamodb

from components.aws.context import AwsContext
from components.aws.data_perimeter import VpcPerimeter, policy_document
from components.aws.iam import Statement
from components.aws.role import ExecutionRole
from components.base import Component

DATA_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)
"""What the backends do (transactions are authorised per item action); no Scan, no table management."""
FENCED_ITEM_ACTIONS = (
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PartiQLDelete",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLSelect",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
)
"""Every action that reads or writes items: what a perimeter denies outside the VPC."""


@dataclass(frozen=True)
class TableLayout:
    """A table's keys (all strings), its secondary indexes and its TTL attribute."""

    setting: str
    """The runtime setting naming the table (``dynamodb_conversations_table``)."""
    sort_key: bool = True
    indexes: Mapping[str, tuple[tuple[str, str], tuple[str, str]]] = field(default_factory=dict)
    """index name -> ((hash attribute, type), (range attribute, type)), keys-only projection."""
    ttl_attribute: str | None = None


TABLES: Mapping[str, TableLayout] = {
    "conversations": TableLayout("dynamodb_conversations_table"),
    "memories": TableLayout("dynamodb_memories_table"),
    "tasks": TableLayout(
        "dynamodb_tasks_table", indexes={"awaiting_approval": (("awaiting", "S"), ("created_at", "N"))}
    ),
    "ledger": TableLayout("dynamodb_ledger_table", sort_key=False, ttl_attribute="ttl"),
}


@dataclass(frozen=True)
class StateTablesArgs:
    deletion_protection: bool = False
    tasks: bool = True
    """Whether the stage runs task workers; without them (the pilot) there is no tasks table to keep."""
    perimeter: VpcPerimeter | None = None
    """The VPC's DynamoDB endpoint, outside which item actions are denied (see the module docstring)."""

    def __post_init__(self) -> None:
        if self.perimeter is not None and self.perimeter.service != "dynamodb":
            raise ValueError(
                f"perimeter: the tables are reached through the dynamodb endpoint, not {self.perimeter.service}; "
                "use network.perimeter('dynamodb')"
            )


class StateTables(Component):
    """``agentstage:aws:StateStore``: conversations, memories, the ledger and, where workers run tasks, tasks.

    Outputs: ``table_names`` (by purpose).
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        args: StateTablesArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "StateStore", name, opts)
        self.tables = {
            purpose: self._table(name, purpose, layout, context, args)
            for purpose, layout in TABLES.items()
            if args.tasks or purpose != "tasks"
        }
        if args.perimeter is not None:
            for purpose, table in self.tables.items():
                dynamodb.ResourcePolicy(
                    f"{name}-{purpose}-perimeter",
                    resource_arn=table.arn,
                    # A table's policy governs its indexes too, when it names their ARNs.
                    policy=policy_document(
                        [
                            args.perimeter.statement(
                                FENCED_ITEM_ACTIONS, _table_and_indexes(table, purpose), context.account_id
                            )
                        ]
                    ),
                    opts=self.child(),
                )
        self.table_names = {purpose: table.name for purpose, table in self.tables.items()}
        self.register_outputs({"table_names": self.table_names})

    def _table(
        self, name: str, purpose: str, layout: TableLayout, context: AwsContext, args: StateTablesArgs
    ) -> dynamodb.Table:
        attributes = {"pk": "S", **({"sk": "S"} if layout.sort_key else {})}
        for hash_key, range_key in layout.indexes.values():
            attributes.update(dict((hash_key, range_key)))
        return dynamodb.Table(
            f"{name}-{purpose}",
            name=context.name(purpose),
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            range_key="sk" if layout.sort_key else None,
            attributes=[{"name": attribute, "type": kind} for attribute, kind in attributes.items()],
            global_secondary_indexes=[
                {
                    "name": index,
                    "hash_key": hash_key[0],
                    "range_key": range_key[0],
                    "projection_type": "KEYS_ONLY",
                }
                for index, (hash_key, range_key) in layout.indexes.items()
            ],
            ttl={"attribute_name": layout.ttl_attribute, "enabled": True} if layout.ttl_attribute else None,
            point_in_time_recovery={"enabled": True},
            server_side_encryption={"enabled": True, "kms_key_arn": context.key},
            deletion_protection_enabled=args.deletion_protection,
            tags=context.tags,
            opts=self.child(protect=args.deletion_protection),
        )

    def grant_data_access(self, role: ExecutionRole) -> None:
        """Item reads and writes on the tables and their indexes; nothing else."""
        resources = [table.arn for table in self.tables.values()]
        for purpose, table in self.tables.items():
            resources += _table_and_indexes(table, purpose)[1:]
        role.allow("state-data", Statement("StateTables", DATA_ACTIONS, tuple(resources)))

    def runtime_settings(self) -> dict[str, pulumi.Input[str]]:
        return {
            "state_backend": "dynamodb",
            "vector_backend": "dynamodb",
            "budget_backend": "dynamodb",
            **{TABLES[purpose].setting: table_name for purpose, table_name in self.table_names.items()},
        }


def _table_and_indexes(table: dynamodb.Table, purpose: str) -> list[pulumi.Output[str]]:
    """The table's ARN, then its indexes' (``<table>/index/<name>``)."""
    return [
        table.arn,
        *(pulumi.Output.concat(table.arn, "/index/", index) for index in TABLES[purpose].indexes),
    ]
