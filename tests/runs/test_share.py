"""Runs travel with push and pull, and no secret ever reaches a record, a log, a diff, the
ledger or a remote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import BIN, make_repo, write_files
from tether.api import Project

TETHER = str(BIN / "tether")
SECRETS = {
    "cli": "sk-cliabcdefghijklmnopqrstuv",
    "env": "ghp_envABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
    "log": "hunter2-from-the-log",
    "diff": "diffpass-9f8e7d6c",
    "param": "param-secret-value-42",
    "custom": "ACME-778899",
}

# the script holds no secret itself (it is committed): they come from its environment
SCRIPT = """
import os, tether
print("connecting with password=" + os.environ["LOG_PW"])
tether.log_param("db_password", os.environ["PARAM_PW"])
tether.set_tag("licence", os.environ["LICENCE"])
tether.log_metric("acc", 0.5)
"""


def every_byte(*roots: Path) -> bytes:
    out = bytearray()
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                out += path.read_bytes()
    return bytes(out)


def test_secrets_planted_everywhere_are_never_stored_or_pushed(repo: Path, tmp_path: Path) -> None:
    write_files(repo, {"train.py": SCRIPT})
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "base"], cwd=repo, check=True)
    write_files(
        repo, {"settings.py": f'DB_PASSWORD = "{SECRETS["diff"]}"\n'}
    )  # untracked: in the diff
    with Project.open(repo) as project:
        project.config_set("runs.env_allow", '["MY_TOKEN"]')
        project.config_set("redact.patterns", '["ACME-[0-9]{6}"]')
        project.add_remote("origin", str(tmp_path / "remote"))
    env = {
        **os.environ,
        "MY_TOKEN": SECRETS["env"],
        "LOG_PW": SECRETS["log"],
        "PARAM_PW": SECRETS["param"],
        "LICENCE": SECRETS["custom"],
    }
    proc = subprocess.run(
        [TETHER, "run", "--commit-log", "-n", "leaky", "--", sys.executable, "train.py",
         "--api-key", SECRETS["cli"]],
        cwd=repo, env=env, capture_output=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert SECRETS["log"].encode() in proc.stdout  # the user still sees their own output
    with Project.open(repo) as project:
        project.push()
        rec = project.get_run("leaky")
        env_doc = project.ws.store.read_bytes(rec["env"])
        assert b"MY_TOKEN" in env_doc  # captured (allow-listed), but masked
        assert "***" in rec["params"]["api_key"] and rec["params"]["db_password"] == "***"
    stored = every_byte(repo / ".tether", tmp_path / "remote")
    stored += (repo / "experiment_log.yaml").read_bytes()
    stored += subprocess.run(["git", "log", "-p"], cwd=repo, capture_output=True).stdout
    for where, secret in SECRETS.items():
        assert secret.encode() not in stored, f"the {where} secret leaked"


def test_push_and_pull_carry_runs_to_a_second_clone(repo: Path, tmp_path: Path) -> None:
    write_files(repo, {"data/a.csv": "1,2\n", "model.bin": b"\1" * 10})
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "base"], cwd=repo, check=True)
    with Project.open(repo) as project:
        project.add_remote("origin", str(tmp_path / "remote"))
        with project.start_run(name="shared") as run:
            run.log_param("lr", 0.1)
            run.log_metric("acc", 0.9, step=2)
            run.log_input("data")
            run.log_artifact("model.bin")
        with project.start_run(name="hidden"):
            pass
        project.amend_run("shared", tags={"reviewed": "yes"})
        project.delete_run("hidden")
        pushed = project.push()
        assert pushed.refs.refs >= 4  # two runs, an amendment, a tombstone
        mine = project.get_run("shared")
        history = project.run_series("shared")
    clone = make_repo(tmp_path / "clone")
    subprocess.run(["git", "pull", "-q", str(repo), "main"], cwd=clone, check=True)
    with Project.open(clone) as other:
        other.add_remote("origin", str(tmp_path / "remote"))
        other.pull()
        (theirs,) = other.search_runs()
        assert theirs.name == "shared" and theirs.record == mine["record_id"]
        assert theirs.tags == {"reviewed": "yes"} and theirs.metrics["acc"].last == 0.9
        rec = other.get_run("shared")
        assert rec["artifacts"] == mine["artifacts"]
        assert other.run_series("shared") == history and history["acc"][0][::2] == (2, 0.9)
        hidden = other.search_runs(include_deleted=True)
        assert sorted(r.name for r in hidden) == ["hidden", "shared"]  # the tombstone travelled


def test_purge_removes_leaked_data_here_and_on_the_remote(repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    write_files(repo, {"leak.csv": "name,ssn\nann,123-45-6789\n" * 100, ".gitignore": "leak.csv\n"})
    with Project.open(repo) as project:
        project.add_remote("origin", str(remote))
        with project.start_run(name="leaky") as run:
            run.log_artifact("leak.csv")
        with project.start_run(name="fine") as run:
            run.log_metric("acc", 1.0)
        project.push()
        assert b"123-45-6789" in every_byte(remote)
        project.delete_run("leaky")
        leaky = project.resolve_run("leaky")
        result = project.purge_runs(remote="")
        assert result.runs == [leaky] and result.remote_objects >= 1
        assert [r.name for r in project.search_runs()] == ["fine"]
    assert b"123-45-6789" not in every_byte(remote, repo / ".tether")
    assert list((remote / "refs" / "tombstones").iterdir())  # the deletion itself stays


SWEEP = """
import sys, tether
with tether.start_run(name="baseline"):
    with tether.start_run(name="trial", nested=True):
        tether.log_metric("who", float(sys.argv[1]))
"""


def test_same_named_sweeps_from_two_clones_resolve_newest_first(repo: Path, tmp_path: Path) -> None:
    """Ann and Bob both run "baseline" (a sweep with a trial) in their clones and share them:
    the name means the newest, `baseline~1` the other, and each trial keeps its parent."""
    write_files(repo, {"sweep.py": SWEEP})
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "sweep"], cwd=repo, check=True)
    remote = str(tmp_path / "remote")
    bob = make_repo(tmp_path / "bob")
    subprocess.run(["git", "pull", "-q", str(repo), "main"], cwd=bob, check=True)
    for who, clone in enumerate((repo, bob)):  # Ann's sweep first, then Bob's
        done = subprocess.run([sys.executable, "sweep.py", str(who)], cwd=clone, check=False)
        assert done.returncode == 0
        with Project.open(clone) as project:
            if not project.remotes():
                project.add_remote("origin", remote)
            if who:
                project.pull()  # Bob fetches Ann's before pushing his own
            project.push()
    with Project.open(repo) as ann:
        ann.pull()
        newest, before = ann.pick_run("baseline"), ann.pick_run("baseline~1")
        assert newest.matches == 2 and "using the newest" in str(newest.notice)
        for picked, who in ((newest, 1.0), (before, 0.0)):
            (trial,) = ann.search_runs(f"parent = '{picked.id}'")
            assert trial.metrics["who"].last == who  # Bob's sweep is the newest
        trial_ids = {r.id for r in ann.search_runs("name = 'trial'")}
        assert len(trial_ids) == 2 and ann.resolve_run("trial") in trial_ids
