"""``agentstage stacks`` (the pipeline's matrix) and ``agentstage check --deploy`` (its last gate)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from agentstage.cli import main
from agentstage.console import Console
from core.delivery import PLACEHOLDER_DIGEST, environment_rank, split_image
from core.stacks import PROJECT_DIR, available_stacks, load_stack_config

REAL_DIGEST = "sha256:" + "ab12" * 16


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), console=Console(out, err))
    return status, out.getvalue(), err.getvalue()


def matrix(project: Path = PROJECT_DIR) -> list[dict[str, str]]:
    status, out, err = run("stacks", "--format", "github-matrix", "--project-dir", str(project))
    assert status == 0, err
    return json.loads(out)["include"]


def set_image(project: Path, stack: str, image: str) -> None:
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^(    image: ).*$", rf"\g<1>{image}", text, count=1), encoding="utf-8")


def test_the_matrix_holds_every_stack_file_once_development_first_production_last() -> None:
    entries = matrix()
    assert sorted(e["stack"] for e in entries) == available_stacks(PROJECT_DIR)
    ranks = [environment_rank(load_stack_config(e["stack"])[0].environment) for e in entries]
    assert ranks == sorted(ranks), [e["stack"] for e in entries]
    assert entries[0]["environment"] == "dev" and entries[-1]["environment"] == "prod"


def test_each_entry_says_how_to_reach_and_what_to_pin() -> None:
    entries = {e["stack"]: e for e in matrix()}
    for stack, entry in entries.items():
        config, _ = load_stack_config(stack)
        assert (entry["cloud"], entry["region"]) == (config.cloud, config.location)
        image = config.kubernetes.image if config.kubernetes else ""
        assert entry["image_repository"] == image.partition("@")[0]
    assert entries["enterprise-k8s"]["kube_context"] == "prod-eks"
    assert entries["pilot-aws-dev"]["image_repository"] == ""


def test_a_new_stack_file_joins_the_matrix_with_no_workflow_edit(project: Path) -> None:
    source = project / "stacks" / "Pulumi.pilot-dev.yaml"
    text = source.read_text(encoding="utf-8").replace(
        "agentstage:environment: dev", "agentstage:environment: qa"
    )
    (project / "stacks" / "Pulumi.pilot-qa.yaml").write_text(text, encoding="utf-8")
    order = [e["stack"] for e in matrix(project)]
    assert order.index("pilot-dev") < order.index("pilot-qa") < order.index("foundation-staging")


@pytest.mark.parametrize(
    ("environment", "rank"),
    [("dev", 0), ("dev2", 0), ("qa", 1), ("test", 1), ("stg", 2), ("staging", 2), ("k8s", 3), ("prod", 4)],
)
def test_environments_rank_from_development_to_production(environment: str, rank: int) -> None:
    assert environment_rank(environment) == rank


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("acr.azurecr.io/app@sha256:ab", ("acr.azurecr.io/app", "sha256:ab")),
        ("localhost:5000/team/app:1.2", ("localhost:5000/team/app", "")),
        ("ghcr.io/acme/app", ("ghcr.io/acme/app", "")),
    ],
)
def test_an_image_splits_into_repository_and_digest(image: str, parts: tuple[str, str]) -> None:
    assert split_image(image) == parts


def test_the_table_marks_placeholder_images() -> None:
    status, out, _ = run("stacks")
    assert status == 0
    assert re.search(r"(?m)^enterprise-prod\s+azure\s+enterprise\s+prod\s+\S+\s+.*<placeholder digest>$", out)


def test_deploy_refuses_the_placeholder_digest_and_names_the_fix() -> None:
    status, out, err = run("check", "--stack", "enterprise-k8s", "--deploy", "--no-checkov")
    assert (status, out) == (1, "")
    assert f"{PLACEHOLDER_DIGEST[:12]}" not in err  # said in words, not as 64 zeros
    assert err.startswith(
        "error: stacks/Pulumi.enterprise-k8s.yaml: agentstage:kubernetes.image is the placeholder"
    )
    assert (
        "pulumi config set --path agentstage:kubernetes.image ghcr.io/acme/agentstage-runtime@sha256:" in err
    )


def test_deploy_refuses_an_image_by_tag(project: Path) -> None:
    set_image(project, "enterprise-k8s", "ghcr.io/acme/agentstage-runtime:1.4.2")
    status, _, err = run(
        "check", "--stack", "enterprise-k8s", "--deploy", "--no-checkov", "--project-dir", str(project)
    )
    assert status == 1 and "names a tag, and a tag can move under a deployment" in err


def test_deploy_passes_a_pinned_digest(project: Path) -> None:
    set_image(project, "enterprise-k8s", f"ghcr.io/acme/agentstage-runtime@{REAL_DIGEST}")
    status, out, err = run(
        "check", "--stack", "enterprise-k8s", "--deploy", "--no-checkov", "--project-dir", str(project)
    )
    assert status == 0, err
    assert "verdict enterprise-k8s: PASS" in out


def test_plan_says_when_the_image_is_the_placeholder() -> None:
    status, _, err = run("plan", "--stack", "enterprise-k8s", "--format", "json")
    assert status == 0
    assert "warning: stack enterprise-k8s: agentstage:kubernetes.image is the placeholder digest" in err


def test_deploy_with_a_saved_graph_is_a_usage_error(tmp_path: Path) -> None:
    graph = tmp_path / "graph.json"
    graph.write_text("{}", encoding="utf-8")
    status, _, err = run("check", "--graph", str(graph), "--deploy")
    assert status == 2 and "--deploy checks stack files: use --stack or --all, not --graph" in err
