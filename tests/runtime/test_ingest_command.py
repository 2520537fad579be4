"""``agentstage ingest PATH`` fills the index ``agentstage dev`` searches, and re-running it after edits
updates exactly what changed; a dev agent with ``knowledge_search`` then answers citing the right document."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
from test_dev_command import running_dev

from agentstage.cli import main
from agentstage.console import Console

AGENTS = [{"name": "librarian", "instructions": "Cite your sources.", "tools": ["knowledge_search"]}]


def ingest(workdir: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        status = main(["ingest", *argv], Console(out, err))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "readers.yaml").write_text('"hr/*": [hr]\n"*.md": ["*"]\n')
    (docs / "returns.md").write_text(
        "# Returns\n\n## Damaged parcels\n\nA damaged parcel is refunded within 14 days of the claim."
    )
    (docs / "tracking.md").write_text("# Tracking\n\nEvery parcel gets a waybill number at pickup.")
    (docs / "hr" / "salaries.md").write_text("# Salaries\n\nSalary bands are reviewed in spring.")
    (docs / "notes.txt").write_text("no readers cover this file")
    (tmp_path / "agents.yaml").write_text(json.dumps(AGENTS))
    return tmp_path


def test_ingest_reports_what_it_did_and_a_rerun_changes_exactly_what_changed(workdir: Path) -> None:
    status, out, _ = ingest(workdir, "docs")
    assert status == 0
    assert out.splitlines()[0] == "4 documents: 3 indexed (3 chunks), 0 unchanged, 0 removed, 1 skipped"
    assert "skipped notes.txt: declares no readers" in out
    assert "knowledge index: .agentstage/state.db" in out

    (workdir / "docs" / "tracking.md").write_text("# Tracking\n\nEvery parcel gets a waybill and a QR code.")
    (workdir / "docs" / "hr" / "salaries.md").unlink()
    status, out, _ = ingest(workdir, "docs", "--readers", "staff")
    assert status == 0
    assert out.splitlines()[0] == "4 documents: 2 indexed (2 chunks), 1 unchanged, 1 removed, 0 skipped"


def test_ingest_names_a_missing_folder_and_a_broken_readers_file(workdir: Path) -> None:
    status, _, err = ingest(workdir, "nowhere")
    assert status == 2 and "nowhere: no such folder of documents" in err
    (workdir / "docs" / "readers.yaml").write_text("[not, a, mapping]")
    status, _, err = ingest(workdir, "docs")
    assert status == 2 and "readers.yaml: expected a mapping" in err


def test_ingest_names_a_change_of_embedding_dimensions_and_the_fix(workdir: Path) -> None:
    assert ingest(workdir, "docs")[0] == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENTSTAGE_EMBEDDING_DIMENSIONS", "128")
        status, _, err = ingest(workdir, "docs")
    assert status == 2
    assert "holds 384-dimensional embeddings but 128 were configured" in err
    assert "set AGENTSTAGE_EMBEDDING_DIMENSIONS back" in err and "internal error" not in err


def test_a_dev_agent_answers_from_the_ingested_documents_citing_the_source(workdir: Path) -> None:
    assert ingest(workdir, "docs")[0] == 0
    with running_dev(workdir, "--agents", "agents.yaml") as dev:
        response = httpx.post(
            f"{dev.url}/v1/agents/librarian/invoke",
            json={"input": 'call knowledge_search {"query": "refund for a damaged parcel"}'},
            headers={"Authorization": "Bearer dev-key"},
            timeout=30,
        )
    assert response.status_code == 200, response.text
    passages = json.loads(response.json()["answer"])
    best = passages[0]
    assert best["source"]["document"] == "returns.md"
    assert best["source"]["section"] == "Returns > Damaged parcels"
    assert "refunded within 14 days" in best["text"]
    assert all(passage["source"]["document"] != "hr/salaries.md" for passage in passages)
