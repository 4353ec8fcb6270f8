"""W3C PROV-JSON export, read back by the `prov` package."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.lineage.conftest import Chain
from tether.api import Project
from tether.lineage import prov_document, prov_json

prov_model = pytest.importorskip("prov.model")


def read_back(text: str) -> Any:
    return prov_model.ProvDocument.deserialize(content=text, format="json")


def test_runs_objects_and_users_round_trip(project: Project, chain: Chain) -> None:
    doc = read_back(prov_json(prov_document(project.ws)))
    activities = {str(a.identifier): a for a in doc.get_records(prov_model.ProvActivity)}
    assert set(activities) == {f"run:{chain.prep}", f"run:{chain.train}"}
    prep = activities[f"run:{chain.prep}"]
    assert prep.get_startTime() < prep.get_endTime()
    assert prep.label == "prep"
    entities = {str(e.identifier): e for e in doc.get_records(prov_model.ProvEntity)}
    assert {chain.raw, chain.clean, chain.model} <= set(entities)
    assert entities[chain.clean].label == "clean.csv"
    used = {(str(u.args[0]), str(u.args[1])) for u in doc.get_records(prov_model.ProvUsage)}
    assert {(f"run:{chain.prep}", chain.raw), (f"run:{chain.train}", chain.clean)} <= used
    commit = project.get_run(chain.prep)["code"]["commit"]
    assert (f"run:{chain.prep}", f"git:{commit}") in used
    generated = {
        (str(g.args[0]), str(g.args[1])) for g in doc.get_records(prov_model.ProvGeneration)
    }
    assert generated == {(chain.clean, f"run:{chain.prep}"), (chain.model, f"run:{chain.train}")}
    (agent,) = doc.get_records(prov_model.ProvAgent)
    assocs = doc.get_records(prov_model.ProvAssociation)
    assert {str(a.args[1]) for a in assocs} == {str(agent.identifier)}
    # the run id is a UUID: `run:` expands to urn:uuid:
    assert prep.identifier.uri == f"urn:uuid:{chain.prep}"


def test_pipeline_stages_were_informed_by_their_pipeline_run(
    project: Project, pipeline_run: str
) -> None:
    doc = read_back(prov_json(prov_document(project.ws)))
    informed = {
        (str(c.args[0]), str(c.args[1])) for c in doc.get_records(prov_model.ProvCommunication)
    }
    stages = {project.get_run(n)["id"] for n in ("prepare", "count")}
    assert informed == {(f"run:{s}", f"run:{pipeline_run}") for s in stages}


def test_cli_writes_the_document(cli: Callable[..., Result], chain: Chain, repo: Path) -> None:
    result = cli("export", "prep", "--prov", "lineage.prov.json")
    assert "wrote a PROV-JSON document to lineage.prov.json" in result.output
    text = (repo / "lineage.prov.json").read_text()
    assert set(json.loads(text)["activity"]) == {f"run:{chain.prep}"}
    assert len(list(read_back(text).get_records(prov_model.ProvActivity))) == 1
