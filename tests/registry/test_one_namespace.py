"""A prompt and a model cannot share a name: their git tags (NAME@v…, NAME#LABEL#N) would
collide, and a model's transition used to overwrite the prompt's label tag."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Tether, git
from tests.registry.conftest import People


def test_a_model_cannot_take_a_prompts_name(trained: str, repo: Path, tether: Tether) -> None:
    tether("prompt", "new", "clf")
    out = tether("model", "register", "clf", "--run", trained, "--path", "model.pkl", expect=4)
    assert "clf is a prompt in this repository" in out.output
    tether("model", "register", "clf-model", "--run", trained, "--path", "model.pkl")


def test_a_prompt_cannot_take_a_models_name(trained: str, repo: Path, tether: Tether) -> None:
    tether("model", "register", "clf", "--run", trained, "--path", "model.pkl")
    assert "is a registered model" in tether("prompt", "new", "clf", expect=4).output
    assert not (repo / "prompts" / "clf").exists()


def test_a_clash_made_before_is_reported_and_no_tag_is_forced(
    trained: str, people: People, repo: Path, tether: Tether
) -> None:
    tether("model", "register", "clf", "--run", trained, "--path", "model.pkl")
    # a prompt of the same name arrives from a branch made before the check, with a label tag
    (repo / "prompts" / "clf" / "v1.0.0").mkdir(parents=True)
    git(repo, "tag", "-a", "clf#production#1", "-m", "promote production -> clf@v1.0.0", "HEAD")
    before = git(repo, "rev-parse", "clf#production#1")
    tether("model", "policy", "apply")
    tether("model", "request", "clf@v1", "--to", "production")
    people.use("bob")
    tether("model", "approve", "clf@v1")
    assert git(repo, "rev-parse", "clf#production#1") == before  # never overwritten
    out = tether("audit", "verify", expect=1).output
    assert "clf is both a prompt and a model" in out
