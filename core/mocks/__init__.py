"""Mock profiles for the offline plan engine: what each cloud's provider would answer in a preview.

Under ``pulumi.runtime.set_mocks`` every computed output is unknown unless the mock returns it. A profile
answers for its cloud's resource types (by type-token prefix) and provider functions (invokes): an id
shaped like the real one, the outputs a first preview already knows, and nothing invented that only a
live cloud can know. Resources of a type no profile claims (Kubernetes objects, local commands, random
values) echo their inputs. An invoke nobody answers fails loudly rather than returning made-up data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pulumi.runtime import mocks as pulumi_mocks

from core.errors import AgentstageError


class OfflineInvokeError(AgentstageError):
    """The program asked a provider something only a live cloud can answer."""


class CloudProfile(Protocol):
    """One cloud's answers: resources whose type starts with one of ``prefixes``, and its invokes."""

    prefixes: tuple[str, ...]

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]: ...

    def invoke(self, token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
        """The function's result, or ``None`` when this profile does not answer ``token``."""
        ...


class OfflineMocks(pulumi_mocks.Mocks):
    """Dispatches each registration and invoke to the profile of its cloud."""

    def __init__(self, profiles: Sequence[CloudProfile]) -> None:
        self.profiles = tuple(profiles)

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        for profile in self.profiles:
            if args.typ.startswith(profile.prefixes):
                return profile.new_resource(args)
        return f"/agentstage-plan/{args.typ}/{args.name}", dict(args.inputs)

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict[str, Any]:
        for profile in self.profiles:
            answer = profile.invoke(args.token, args.args)
            if answer is not None:
                return answer
        raise OfflineInvokeError(f"the program calls '{args.token}', which cannot be answered offline")


def offline_mocks(config: Mapping[str, str]) -> OfflineMocks:
    """Every cloud's profile, configured from the stack's config (the AWS region, for one)."""
    from core.mocks.aws import AwsProfile
    from core.mocks.azure import AzureProfile

    return OfflineMocks([AzureProfile(), AwsProfile.from_config(config)])
