"""The shared vector DB: Aurora PostgreSQL Serverless v2 with pgvector, for the knowledge index.

- engine: aurora-postgresql 16.6 (pgvector 0.8, whose iterative HNSW scan the runtime uses for filtered
  searches; 16.3 is the first 16.x that scales to 0 ACUs). One ``db.serverless`` writer; capacity from
  ``min_capacity`` to ``max_capacity`` ACUs. At 0 ACUs the instance pauses after
  ``seconds_until_auto_pause`` without connections: idle, it costs only its storage; the first
  connection resumes it (about 15 s). Minor versions are applied by AWS in the maintenance window.
- access: private subnets and the network's database security group only (5432 from the functions' group),
  no public address. Connections use TLS and IAM database authentication: a role gets ``rds-db:connect``
  as one database user (:meth:`VectorDatabase.grant_connect`) and the runtime signs a token with it; no
  application password exists. The master password is generated and kept by RDS in Secrets Manager,
  sealed with the stack's key: it is never in the program, its state or the function's settings.
- data: storage sealed with the stack's key, automated backups, tags copied to snapshots; in protected
  environments deletion protection and a final snapshot.
- observability: the ``postgresql`` log exported to a log group created first (retention, stack key);
  Performance Insights at its free 7-day retention (Database Insights standard mode), sealed with the key.
- bootstrap: a small function in the VPC, invoked at deploy time, logs in as the master user (reading the
  master secret, its only permission besides its own logs and network interfaces) and creates the
  extension, the schema, the knowledge tables and indexes, and the writer and reader users with the
  ``rds_iam`` role. It runs again whenever what it was given (or its code) changes, and is idempotent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
from pulumi_aws import lambda_, rds

from components.aws.context import PARTITION, AwsContext
from components.aws.iam import Statement
from components.aws.logs import log_group, retention
from components.aws.network import Network
from components.aws.role import ExecutionRole
from components.aws.serverless_agent import RUNTIME, check_architecture, check_deployable
from components.base import Component
from components.packaging import Package

ENGINE = "aurora-postgresql"
PORT = 5432
SCHEMA = "agentstage"
"""The schema the runtime's PostgreSQL stores use (it has no setting for another)."""
MASTER_USER = "dbadmin"
BOOTSTRAP_HANDLER = "aws_database_bootstrap.handler"
HNSW_SINCE = {12: (12, 16), 13: (13, 12), 14: (14, 9), 15: (15, 4), 16: (16, 0), 17: (17, 0)}
"""The first Aurora PostgreSQL version of each major with pgvector 0.5, the first with HNSW indexes."""
AUTO_PAUSE_SINCE = {13: (13, 15), 14: (14, 12), 15: (15, 7), 16: (16, 3), 17: (17, 0)}
"""The first version of each major that scales to 0 ACUs."""
MAX_HNSW_DIMENSIONS = 2000
"""pgvector's HNSW index takes ``vector`` columns of up to 2,000 dimensions."""
PERFORMANCE_INSIGHTS_FREE_DAYS = 7
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class VectorDatabaseArgs:
    """The cluster in ``network``'s private subnets, and its bootstrap.

    ``dimensions`` of the stored embeddings (the runtime's ``embedding_dimensions``); ``writer_user`` and
    ``reader_user`` the database users the ingestion worker and the agents connect as;
    ``bootstrap_package`` the runtime's Lambda package for ``architecture``.
    """

    network: Network
    bootstrap_package: Package
    dimensions: int
    architecture: str = "arm64"
    engine_version: str = "16.6"
    database: str = "agentstage"
    writer_user: str = "agentstage_writer"
    reader_user: str = "agentstage_reader"
    min_capacity: float = 0.0
    max_capacity: float = 4.0
    seconds_until_auto_pause: int = 900
    backup_retention_days: int = 7
    deletion_protection: bool = False
    log_retention_days: int = 30

    def __post_init__(self) -> None:
        check_architecture(self.bootstrap_package, self.architecture)
        if not _at_least(_version(self.engine_version), HNSW_SINCE):
            raise ValueError(
                f"engine_version: {self.engine_version} has no pgvector HNSW index (pgvector 0.5); use 16.6"
            )
        if "secretsmanager" not in self.network.interface_services:
            raise ValueError(
                "network: the bootstrap reads the master secret from inside the VPC; add 'secretsmanager' "
                "to the network's interface_services"
            )
        if not 1 <= self.dimensions <= MAX_HNSW_DIMENSIONS:
            raise ValueError(
                f"dimensions: {self.dimensions} is outside 1-{MAX_HNSW_DIMENSIONS}, what pgvector's HNSW "
                "index takes; choose an embedding size within it"
            )
        for field in ("database", "writer_user", "reader_user"):
            value = getattr(self, field)
            if not _IDENTIFIER.fullmatch(value) or value.startswith(("pg_", "rds")):
                raise ValueError(
                    f"{field}: '{value}' must be a lowercase PostgreSQL name (letters, digits, '_', starting "
                    "with a letter, at most 63), not starting with pg_ or rds"
                )
        if len({self.writer_user, self.reader_user, MASTER_USER}) < 3:
            raise ValueError(
                f"writer_user and reader_user must differ from each other and from '{MASTER_USER}'"
            )
        self._check_capacity()
        if not 1 <= self.backup_retention_days <= 35:
            raise ValueError(f"backup_retention_days: {self.backup_retention_days} is outside Aurora's 1-35")

    def _check_capacity(self) -> None:
        for field in ("min_capacity", "max_capacity"):
            value = getattr(self, field)
            if not 0 <= value <= 256 or (value * 2) % 1:
                raise ValueError(f"{field}: {value} must be 0 to 256 ACUs in steps of 0.5")
        if self.max_capacity < max(1.0, self.min_capacity):
            raise ValueError(
                f"max_capacity: {self.max_capacity} must be at least 1 ACU and at least min_capacity "
                f"({self.min_capacity})"
            )
        if self.min_capacity == 0:
            if not 300 <= self.seconds_until_auto_pause <= 86400:
                raise ValueError(
                    f"seconds_until_auto_pause: {self.seconds_until_auto_pause} is outside 300-86400"
                )
            if not _at_least(_version(self.engine_version), AUTO_PAUSE_SINCE):
                raise ValueError(
                    f"engine_version: {self.engine_version} cannot scale to 0 ACUs (min_capacity 0); use "
                    "16.3 or later, or a min_capacity of 0.5"
                )


class VectorDatabase(Component):
    """``agentstage:aws:VectorDatabase``: cluster, writer instance, subnet group, logs and the bootstrap.

    Outputs: ``endpoint``, ``reader_endpoint``, ``port``, ``database``, ``cluster_arn``,
    ``cluster_resource_id``, ``master_secret_arn``.
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        args: VectorDatabaseArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "VectorDatabase", name, opts)
        self._context = context
        self._args = args
        identifier = context.name(name)
        subnets = rds.SubnetGroup(
            f"{name}-subnets",
            name=identifier,
            description="Private subnets of the stack's network",
            subnet_ids=args.network.subnet_ids_of("data"),
            tags=context.tags,
            opts=self.child(),
        )
        logs = log_group(
            name,
            context,
            f"/aws/rds/cluster/{identifier}/postgresql",
            retention(args.log_retention_days),
            self,
        )
        self.cluster = rds.Cluster(
            f"{name}-cluster",
            cluster_identifier=identifier,
            engine=ENGINE,
            engine_mode="provisioned",
            engine_version=args.engine_version,
            database_name=args.database,
            port=PORT,
            master_username=MASTER_USER,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=context.key,
            iam_database_authentication_enabled=True,
            storage_encrypted=True,
            kms_key_id=context.key,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[args.network.database_security_group_id],
            serverlessv2_scaling_configuration={
                "min_capacity": args.min_capacity,
                "max_capacity": args.max_capacity,
                "seconds_until_auto_pause": args.seconds_until_auto_pause if args.min_capacity == 0 else None,
            },
            backup_retention_period=args.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=not args.deletion_protection,
            final_snapshot_identifier=context.name(name, "final") if args.deletion_protection else None,
            enabled_cloudwatch_logs_exports=["postgresql"],
            auto_minor_version_upgrade=True,
            database_insights_mode="standard",
            performance_insights_enabled=True,
            performance_insights_kms_key_id=context.key,
            performance_insights_retention_period=PERFORMANCE_INSIGHTS_FREE_DAYS,
            tags=context.tags,
            opts=self.child(depends_on=[logs], protect=args.deletion_protection),
        )
        self.instance = rds.ClusterInstance(
            f"{name}-writer",
            identifier=context.name(name, "writer"),
            cluster_identifier=self.cluster.id,
            instance_class="db.serverless",
            engine=ENGINE,
            engine_version=self.cluster.engine_version,
            db_subnet_group_name=subnets.name,
            publicly_accessible=False,
            auto_minor_version_upgrade=True,
            copy_tags_to_snapshot=True,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=context.key,
            performance_insights_retention_period=PERFORMANCE_INSIGHTS_FREE_DAYS,
            tags=context.tags,
            opts=self.child(protect=args.deletion_protection),
        )
        self.endpoint: pulumi.Output[str] = self.cluster.endpoint
        self.reader_endpoint: pulumi.Output[str] = self.cluster.reader_endpoint
        self.port: pulumi.Output[int] = self.cluster.port
        self.database = args.database
        self.cluster_arn: pulumi.Output[str] = self.cluster.arn
        self.cluster_resource_id: pulumi.Output[str] = self.cluster.cluster_resource_id
        self.master_secret_arn: pulumi.Output[str] = self.cluster.master_user_secrets.apply(
            lambda secrets: secrets[0].secret_arn
        )
        self._bootstrap(name, context, args)
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "reader_endpoint": self.reader_endpoint,
                "port": self.port,
                "database": self.database,
                "cluster_arn": self.cluster_arn,
                "cluster_resource_id": self.cluster_resource_id,
                "master_secret_arn": self.master_secret_arn,
            }
        )

    def grant_connect(self, role: ExecutionRole, db_user: str) -> None:
        """Let ``role`` log in as ``db_user`` (the writer or the reader) with an IAM token, and as no other."""
        self._check_user(db_user)
        user = pulumi.Output.concat(
            f"arn:{PARTITION}:rds-db:{self._context.region}:",
            self._context.account_id,
            ":dbuser:",
            self.cluster_resource_id,
            f"/{db_user}",
        )
        role.allow("database-connect", Statement("ConnectAsDatabaseUser", ("rds-db:connect",), (user,)))

    def runtime_settings(self, db_user: str) -> dict[str, pulumi.Input[str]]:
        """What the runtime connecting as ``db_user`` needs: the knowledge index on this database, a DSN without
        password (the runtime signs an IAM token as the password), TLS required. The reader connects through
        the reader endpoint (the writer's instance until readers are added)."""
        self._check_user(db_user)
        host = self.endpoint if db_user == self._args.writer_user else self.reader_endpoint
        dsn = pulumi.Output.format(
            "host={0} port={1} dbname={2} user={3} sslmode=require", host, self.port, self.database, db_user
        )
        return {
            "knowledge_backend": "postgres",
            "postgres_dsn": dsn,
            "postgres_iam_auth": "true",
            "aws_region": self._context.region,  # the region the token is signed for
            "embedding_dimensions": str(self._args.dimensions),  # the vector column the bootstrap created
        }

    def _check_user(self, db_user: str) -> None:
        users = (self._args.writer_user, self._args.reader_user)
        if db_user not in users:
            raise ValueError(
                f"db_user: '{db_user}' is not a user the bootstrap creates; use one of {', '.join(users)}"
            )

    def _bootstrap(self, name: str, context: AwsContext, args: VectorDatabaseArgs) -> None:
        """The function that prepares the database, and its invocation once the instance is available."""
        check_deployable(f"{name}-bootstrap", args.bootstrap_package)
        function_name = context.name(name, "bootstrap")
        role = ExecutionRole(f"{name}-bootstrap", context, opts=self.child())
        logs = log_group(
            f"{name}-bootstrap",
            context,
            f"/aws/lambda/{function_name}",
            retention(args.log_retention_days),
            self,
        )
        grants = [
            role.allow(
                "logs-write",
                Statement(
                    "WriteOwnLogs",
                    ("logs:CreateLogStream", "logs:PutLogEvents"),
                    (pulumi.Output.concat(logs.arn, ":*"),),
                ),
            ),
            role.allow(
                "master-secret-read",
                Statement("ReadMasterSecret", ("secretsmanager:GetSecretValue",), (self.master_secret_arn,)),
                Statement(
                    "DecryptMasterSecret",
                    ("kms:Decrypt",),
                    (context.key,),
                    {
                        "StringEquals": {
                            "kms:ViaService": f"secretsmanager.{context.region}.amazonaws.com",
                            "kms:EncryptionContext:SecretARN": self.master_secret_arn,
                        }
                    },
                ),
            ),
        ]
        placement = args.network.place(role)
        function = lambda_.Function(
            f"{name}-bootstrap",
            name=function_name,
            description="Creates pgvector, the knowledge schema and the IAM-authenticated users",
            role=role.arn,
            runtime=RUNTIME,
            handler=BOOTSTRAP_HANDLER,
            architectures=[args.architecture],
            code=pulumi.FileArchive(str(args.bootstrap_package.path)),
            source_code_hash=args.bootstrap_package.sha256,
            memory_size=256,
            timeout=120,  # a paused instance takes about 15 s to resume
            reserved_concurrent_executions=1,  # never two bootstraps at once
            vpc_config={
                "subnet_ids": list(placement.subnet_ids),
                "security_group_ids": list(placement.security_group_ids),
            },
            tracing_config={"mode": "PassThrough"},
            logging_config={"log_format": "JSON", "log_group": logs.name},
            tags=context.tags,
            opts=self.child(depends_on=[logs, *grants, placement.grant]),
        )
        request = {
            "secretArn": self.master_secret_arn,
            "host": self.endpoint,
            "port": self.port,
            "database": args.database,
            "schema": SCHEMA,
            "writer": args.writer_user,
            "reader": args.reader_user,
            "dimensions": args.dimensions,
        }
        lambda_.Invocation(
            f"{name}-bootstrap",
            function_name=function.name,
            input=pulumi.Output.from_input(request).apply(lambda known: json.dumps(known, sort_keys=True)),
            triggers={
                "code": args.bootstrap_package.sha256,
                **{key: pulumi.Output.from_input(value).apply(str) for key, value in request.items()},
            },
            opts=self.child(depends_on=[self.instance, args.network]),
        )


def _version(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)", text)
    if match is None:
        raise ValueError(f"engine_version: '{text}' is not a major.minor version such as 16.6")
    return int(match.group(1)), int(match.group(2))


def _at_least(version: tuple[int, int], since: dict[int, tuple[int, int]]) -> bool:
    """``version`` is one of ``since``'s majors from its first good minor on, or a later major."""
    first = since.get(version[0])
    return version[0] > max(since) or (first is not None and version >= first)
