"""The hardened pod every agent workload runs: Pod Security Standards "restricted", and then some.

One function builds the pod spec so the hardening cannot differ between the API and the worker:

- non-root with a fixed high UID/GID (10001, the runtime image's user: numeric, so ``runAsNonRoot`` can be
  verified without reading ``/etc/passwd``, and above 10000 so it never maps to a host user);
- read-only root filesystem, with an ``emptyDir`` on ``/tmp`` for the scratch space Python and the
  runtime's SQLite fallbacks need (memory-backed, capped, gone with the pod);
- no privilege escalation, every capability dropped, the runtime's default seccomp profile;
- no service account token mounted: workload identity webhooks (Azure, EKS) inject a projected token of
  their own, so the Kubernetes API credential stays out of a pod that never calls the API;
- requests and limits on every container, and ``imagePullPolicy: Always`` so a node re-verifies its pull
  credentials instead of serving a cached image to a pod that may not pull it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from agent_runtime.settings_contract import SETTINGS_DIR_VARIABLE

RUNTIME_UID = 10001  # the runtime image's user and group (runtime/Dockerfile)
SCRATCH_DIR = "/tmp"  # the pod's own memory-backed emptyDir, not a shared host directory
SCRATCH_LIMIT = "256Mi"
SETTINGS_SECRET_DIR = "/var/run/secrets/agentstage"
"""Where a settings Secret is mounted, read-only; the runtime reads each file as the setting it names."""
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ContainerResources:
    """CPU and memory requests (what the scheduler reserves) and limits (what the container may use).

    Defaults fit one agent process: it mostly waits on the model, so a quarter core is reserved and bursts
    to one core; memory is capped at 1 GiB, which a runaway tool response cannot exceed without an OOM kill
    that affects this pod only.
    """

    cpu_request: str = "250m"
    memory_request: str = "512Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"


@dataclass(frozen=True)
class Probe:
    """A liveness or readiness check: an HTTP GET of ``path`` on the container port, or ``command`` run inside."""

    path: str | None = None
    command: tuple[str, ...] = ()
    period_seconds: int = 10
    failure_threshold: int = 3
    initial_delay_seconds: int = 5

    def __post_init__(self) -> None:
        if (self.path is None) == (not self.command):
            raise ValueError("a probe needs exactly one of 'path' (HTTP GET) or 'command' (exec)")

    def to_args(self, port: int | None) -> k8s.core.v1.ProbeArgs:
        http_get = None
        if self.path is not None:
            if port is None:
                raise ValueError(f"an HTTP probe of '{self.path}' needs the container to serve a port")
            http_get = k8s.core.v1.HTTPGetActionArgs(path=self.path, port=port)
        return k8s.core.v1.ProbeArgs(
            http_get=http_get,
            exec_=k8s.core.v1.ExecActionArgs(command=list(self.command)) if self.command else None,
            period_seconds=self.period_seconds,
            failure_threshold=self.failure_threshold,
            initial_delay_seconds=self.initial_delay_seconds,
            timeout_seconds=3,
        )


def check_image(image: str) -> str:
    """``image`` if it names a version tag or a digest; a mutable reference is refused.

    ``repo`` and ``repo:latest`` change under a running Deployment, so a rollback or a scan result would
    describe an image nobody can name. A registry port (``host:5000/repo``) is not a tag.
    """
    if _DIGEST.search(image):
        return image
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag or tag == "latest" or "@" in image:
        raise ValueError(
            f"image '{image}' must be pinned: give a version tag (repo:1.4.2) or a digest (repo@sha256:<64 hex>)"
        )
    return image


def hardened_pod_spec(
    *,
    container_name: str,
    image: pulumi.Input[str],
    command: Sequence[str] | None,
    env: Mapping[str, pulumi.Input[str]],
    settings_secret: str | None,
    resources: ContainerResources,
    liveness: Probe,
    readiness: Probe,
    service_account_name: pulumi.Input[str],
    port: int | None,
) -> k8s.core.v1.PodSpecArgs:
    """The pod spec of one agent container, hardened as the module docstring describes.

    ``settings_secret`` names a Secret mounted as files (one per key, ``AGENTSTAGE_<SETTING>``) in
    :data:`SETTINGS_SECRET_DIR`, which the runtime reads as settings (``AGENTSTAGE_SETTINGS_DIR``): its values
    never pass through the Pulumi program or state, nor through the environment, where every process of the
    container and every crash dump could read them.
    """
    return k8s.core.v1.PodSpecArgs(
        service_account_name=service_account_name,
        automount_service_account_token=False,
        security_context=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=RUNTIME_UID,
            run_as_group=RUNTIME_UID,
            fs_group=RUNTIME_UID,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        containers=[
            k8s.core.v1.ContainerArgs(
                name=container_name,
                image=pulumi.Output.from_input(image).apply(check_image),
                image_pull_policy="Always",
                command=list(command) if command else None,
                env=[
                    k8s.core.v1.EnvVarArgs(name=key, value=value)
                    for key, value in sorted(
                        {
                            **env,
                            **({SETTINGS_DIR_VARIABLE: SETTINGS_SECRET_DIR} if settings_secret else {}),
                        }.items()
                    )
                ],
                ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=port)] if port else None,
                resources=k8s.core.v1.ResourceRequirementsArgs(
                    requests={"cpu": resources.cpu_request, "memory": resources.memory_request},
                    limits={"cpu": resources.cpu_limit, "memory": resources.memory_limit},
                ),
                liveness_probe=liveness.to_args(port),
                readiness_probe=readiness.to_args(port),
                security_context=k8s.core.v1.SecurityContextArgs(
                    run_as_non_root=True,
                    run_as_user=RUNTIME_UID,
                    run_as_group=RUNTIME_UID,
                    read_only_root_filesystem=True,
                    allow_privilege_escalation=False,
                    privileged=False,
                    capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                    seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                ),
                volume_mounts=[
                    k8s.core.v1.VolumeMountArgs(name="scratch", mount_path=SCRATCH_DIR),
                    *(
                        [
                            k8s.core.v1.VolumeMountArgs(
                                name="settings", mount_path=SETTINGS_SECRET_DIR, read_only=True
                            )
                        ]
                        if settings_secret
                        else []
                    ),
                ],
            )
        ],
        volumes=[
            k8s.core.v1.VolumeArgs(
                name="scratch",
                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory", size_limit=SCRATCH_LIMIT),
            ),
            *(
                [
                    k8s.core.v1.VolumeArgs(
                        name="settings",
                        secret=k8s.core.v1.SecretVolumeSourceArgs(
                            secret_name=settings_secret, default_mode=0o440
                        ),
                    )
                ]
                if settings_secret
                else []
            ),
        ],
    )
