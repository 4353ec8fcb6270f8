"""`tether diff`, `runs compare` and `env export`: what a user reads to explain two results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tether as tether_api
from tests.conftest import Tether, write_files
from tether.api import Project


def fake_distribution(site: Path, name: str, version: str) -> None:
    """An installed distribution as importlib.metadata sees one (a folder on sys.path)."""
    for old in site.glob(f"{name}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def two_runs(project: Project, repo: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_files(repo, {"train.py": "v1\n", "data/a.csv": "1\n", "data/b.csv": "2\n"})
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "one"], cwd=repo, check=True)
    fake_distribution(site, "fakepkg", "1.0")
    monkeypatch.syspath_prepend(str(site))
    with project.start_run(name="a") as run:
        run.log_param("lr", 0.1)
        run.log_param("epochs", 3)
        run.seed(1)
        run.log_input("data")
        run.log_metric("acc", 0.80)
    write_files(repo, {"train.py": "v2\n", "data/b.csv": "3\n", "data/c.csv": "4\n"})
    subprocess.run(["git", "commit", "-qam", "two"], cwd=repo, check=True)
    fake_distribution(site, "fakepkg", "2.0")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    with project.start_run(name="b") as run:
        run.log_param("lr", 0.2)
        run.log_param("epochs", 3)
        run.seed(2)
        run.log_input("data")
        run.log_metric("acc", 0.85)


def test_diff_explains_all_four_pillars(
    project: Project, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_runs(project, repo, tmp_path / "site", monkeypatch)
    d = project.diff_runs("a", "b")
    assert d.params == {"lr": ("0.1", "0.2")}  # epochs did not change
    assert d.code.ahead == 1 and d.code.behind == 0 and "train.py" in d.code.files
    (data,) = [c for c in d.data if c.role == "input"]
    assert data.path == "data" and data.added == ["c.csv"] and data.modified == ["b.csv"]
    assert d.env.changed["fakepkg"] == ("1.0", "2.0")
    assert d.env.seeds == ([1], [2])
    assert d.env.determinism["PYTHONHASHSEED"] == (None, "0")
    assert d.metrics["acc"] == pytest.approx((0.80, 0.85))
    causes = d.causes
    assert causes[0] == "parameter lr: 0.1 → 0.2"
    assert causes.index("input data changed (2 files inside)") < causes.index("seed: [1] → [2]")
    assert any(c.startswith("code: 1 commit apart") for c in causes)
    assert "package fakepkg: 1.0 → 2.0" in causes


def test_diff_renders_as_text_json_and_markdown(
    project: Project, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tether: Tether
) -> None:
    two_runs(project, repo, tmp_path / "site", monkeypatch)
    text = tether("diff", "a", "b").output
    assert "Likely causes" in text and "1. parameter lr: 0.1 → 0.2" in text
    assert "upgraded fakepkg 1.0 → 2.0" in text and "modified: b.csv" in text
    as_json = json.loads(tether("diff", "a", "b", "--json").output)
    assert as_json["params"] == {"lr": ["0.1", "0.2"]}
    md = tether("diff", "a", "b", "--markdown").output
    assert md.startswith("### Why `a` and `b` differ")
    assert "\n1. parameter lr: 0.1 → 0.2\n" in md and "- lr: 0.1 → 0.2" in md


def test_compare_and_show_and_env_export(
    project: Project, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tether: Tether
) -> None:
    from dockerfile_parse import DockerfileParser

    two_runs(project, repo, tmp_path / "site", monkeypatch)
    cmp = project.compare_runs(["a", "b"])
    assert cmp.params["lr"] == ["0.1", "0.2"] and "params.lr" in cmp.differ
    assert "params.epochs" not in cmp.differ and "metrics.acc" in cmp.differ
    out = tether("runs", "compare", "a", "b").output
    assert "params.lr" in out and "0.85" in out
    shown = tether("runs", "show", "b").output
    assert "lr" in shown and "seeds      2" in shown and "data" in shown
    reqs = tether("env", "export", "b", "--format", "requirements").output
    assert "fakepkg==2.0" in reqs and "click==" in reqs
    parser = DockerfileParser(path=str(tmp_path / "Dockerfile"))
    parser.content = tether("env", "export", "b", "--format", "dockerfile").output
    assert parser.baseimage.startswith("python:3.")
    assert "fakepkg==2.0" in parser.content
    assert parser.envs["PYTHONHASHSEED"] == "0"  # the determinism setting is pinned too


# -- what tether run records besides the four pillars: the command, its folder, variables ----------
PRINT = "print('same output')\n"


def commit_scripts(repo: Path, files: dict[str, str]) -> None:
    write_files(repo, files)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "scripts"], cwd=repo, check=True)


def test_two_scripts_or_two_arguments_are_named_as_the_cause(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_scripts(repo, {"a.py": PRINT, "b.py": PRINT, "p.py": PRINT, "src/w.py": PRINT})
    py = sys.executable
    tether("run", "-n", "A", "--", py, "a.py")
    tether("run", "-n", "B", "--", py, "b.py")
    tether("run", "-n", "P1", "--", py, "p.py", "1")
    tether("run", "-n", "P2", "--", py, "p.py", "2")
    tether("run", "-n", "TOP", "--", py, "src/w.py")
    monkeypatch.chdir(repo / "src")
    tether("run", "-n", "SUB", "--", py, "w.py")
    for a, b, said in (
        ("A", "B", f"1. command: {py} a.py → {py} b.py"),
        ("P1", "P2", f"1. command: {py} p.py 1 → {py} p.py 2"),
        ("TOP", "SUB", f"1. command: {py} src/w.py → {py} w.py"),
    ):
        text = " ".join(tether("diff", a, b).output.split())  # as one line, however wrapped
        assert said in text and f"command in A: {py}" in text
        assert "nondeterminism" not in text


def test_a_parameter_already_named_is_not_named_again_as_the_command(
    repo: Path, tether: Tether
) -> None:
    commit_scripts(repo, {"t.py": PRINT})
    tether("run", "-n", "L1", "--", sys.executable, "t.py", "--lr", "0.1")
    tether("run", "-n", "L2", "--", sys.executable, "t.py", "--lr", "0.2")
    with Project.open(repo) as project:
        d = project.diff_runs("L1", "L2")
    assert d.causes == ["parameter lr: 0.1 → 0.2"]
    assert d.command is not None  # still shown in full under Parameters


def test_the_folder_a_run_started_in_is_compared_when_recorded(project: Project) -> None:
    with project.start_run(name="top"):
        pass
    a, b = project.get_run("top"), project.get_run("top")
    b = {**b, "id": "other", "name": "sub"}
    a["cwd"], b["cwd"] = ".", "src"  # as a record keeps it (repository-relative)
    from tether.runs.compare import diff

    d = diff(project.ws, a, b)
    assert d.cwd == (".", "src")
    assert "working folder: the top → src" in d.causes


def test_environment_variables_that_differ_are_a_cause_in_diff_and_in_reproduce(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    tz = "import os, tether\ntether.log_metric('hour', len(os.environ.get('TZ', '')))\n"
    commit_scripts(repo, {"tz.py": tz})
    monkeypatch.setenv("TZ", "UTC")
    tether("run", "-n", "UTC", "--", sys.executable, "tz.py")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    tether("run", "-n", "TOKYO", "--", sys.executable, "tz.py")
    with Project.open(repo) as project:
        d = project.diff_runs("UTC", "TOKYO")
    assert d.env.env_vars == {"TZ": ("UTC", "Asia/Tokyo")}
    assert "environment variable TZ: 'UTC' → 'Asia/Tokyo'" in d.causes
    text = " ".join(tether("diff", "UTC", "TOKYO").output.split())
    assert "TZ='UTC' → TZ='Asia/Tokyo'" in text and "nondeterminism" not in text
    # reproduced where TZ is another: the drift names it
    verdict = tether("reproduce", "UTC", expect=1).output
    assert "DIFFERENT" in verdict and "TZ='UTC' -> TZ='Asia/Tokyo'" in verdict


MYV2 = "import os\nopen('f.txt', 'w').write(str(os.environ.get('MYV2')))\n"


def test_a_variable_outside_the_allow_list_set_in_one_run_only_is_named_never_its_value(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_scripts(repo, {"v.py": MYV2, ".gitignore": ".tether\nf.txt\n"})
    monkeypatch.setenv("MYV2", "a-value-never-recorded")
    tether("run", "-n", "ENV1", "--out", "f.txt", "--", sys.executable, "v.py")
    monkeypatch.delenv("MYV2")
    tether("run", "-n", "ENV2", "--out", "f.txt", "--", sys.executable, "v.py")
    with Project.open(repo) as project:
        stored = project.ws.store.read_bytes(project.get_run("ENV1")["env"])
        d = project.diff_runs("ENV1", "ENV2")
    assert b"MYV2" in stored and b"a-value-never-recorded" not in stored
    assert d.env.names_a == ["MYV2"] and d.env.names_b == []
    assert d.causes == ["environment variables set in A only: MYV2"]
    text = " ".join(tether("diff", "ENV1", "ENV2").output.split())
    assert "variables set in A only: MYV2" in text and "nondeterminism" not in text
    # reproduced without it: the drift and the explanation name it
    verdict = " ".join(tether("reproduce", "ENV1", expect=1).output.split())
    assert "variables set in the original only: MYV2" in verdict
    assert "1. environment variables set in A only: MYV2" in verdict
    assert "nondeterminism" not in verdict


def test_a_variable_set_in_both_runs_with_another_value_is_hinted_at_not_said_uncaptured(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_scripts(repo, {"v.py": MYV2, ".gitignore": ".tether\nf.txt\n"})
    monkeypatch.setenv("MYV2", "7")
    tether("run", "-n", "SEVEN", "--out", "f.txt", "--", sys.executable, "v.py")
    monkeypatch.setenv("MYV2", "8")
    tether("run", "-n", "EIGHT", "--out", "f.txt", "--", sys.executable, "v.py")
    with Project.open(repo) as project:
        d = project.diff_runs("SEVEN", "EIGHT")
    assert "MYV2" in d.env.unrecorded and not d.causes and not d.uncaptured
    text = " ".join(tether("diff", "SEVEN", "EIGHT").output.split())
    assert "for a variable set in both runs whose value changed" in text
    assert "runs.env_allow" in text and "Not captured" not in text


def test_an_allow_listed_variable_set_as_it_was_is_no_drift(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(repo / "tether.toml", "a") as f:
        f.write('\n[runs]\nenv_allow = ["MYV2"]\n')
    commit_scripts(repo, {"v.py": MYV2, ".gitignore": ".tether\nf.txt\n"})
    monkeypatch.setenv("MYV2", "7")
    tether("run", "-n", "SEVEN", "--out", "f.txt", "--", sys.executable, "v.py")
    out = " ".join(tether("reproduce", "SEVEN").output.split())
    assert "REPRODUCED" in out and "Environment drift none" in out, out


def test_a_run_against_itself_or_its_reproduction_says_the_results_agree(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    # withheld from the reproduction, so set in the original only: named, not ranked as a cause
    monkeypatch.setenv("TETHER_TOKEN", "not-a-real-token")
    commit_scripts(repo, {"m.py": "import tether\ntether.log_metric('acc', 0.5)\n"})
    tether("run", "-n", "M", "--", sys.executable, "m.py")
    assert "same run: nothing differs" in tether("diff", "M", "M").output
    assert "REPRODUCED" in tether("reproduce", "M").output
    with Project.open(repo) as project:
        (again,) = project.search_runs("name = 'M-reproduction'")
    text = " ".join(tether("diff", "M", again.id).output.split())
    assert "the results (metrics and outputs) agree" in text
    assert "TETHER_TOKEN withheld from the reproduction" in text
    assert "nondeterminism" not in text


def test_a_script_that_started_its_own_run_and_its_reproduction_run_the_same_command(
    project: Project, repo: Path
) -> None:
    commit_scripts(repo, {"train.py": "import tether\ntether.log_metric('acc', 0.5)\n"})
    done = subprocess.run([sys.executable, "train.py"], cwd=repo, check=False)
    assert done.returncode == 0
    (run,) = project.search_runs()
    assert project.get_run(run.id)["command"] == ["train.py"]  # its sys.argv
    v = project.reproduce(run.id)  # re-run as `python train.py`
    assert v.verdict == "REPRODUCED" and v.reproduction
    d = project.diff_runs(run.id, v.reproduction)
    assert d.command is None and not [c for c in d.causes if c.startswith("command")]


def test_two_runs_of_a_stage_rank_only_code_changes_in_its_deps(repo: Path, tether: Tether) -> None:
    stage = "stages:\n  s:\n    cmd: python3 s.py\n    deps: [s.py]\n    outs: [s.txt]\n"
    commit_scripts(repo, {"pipeline.yaml": stage, "s.py": "open('s.txt', 'w').write('1')\n"})
    tether("repro")
    commit_scripts(repo, {"s.py": "open('s.txt', 'w').write('2')\n", "NOTES.md": "n\n"})
    tether("repro")
    with Project.open(repo) as project:
        first, second = project.search_runs("tags.stage = 's'", sort="started")
        d = project.diff_runs(first.id, second.id)
    assert d.causes[0] == "input s.py changed"
    assert "code: 1 commit apart, 1 file changed" in d.causes  # s.py, not NOTES.md
    assert any("outside the stage's deps" in n for n in d.notes)


def test_a_script_outside_the_repository_is_named_as_not_captured(
    repo: Path, project: Project, tether: Tether
) -> None:
    outside = repo.parent / "elsewhere"
    outside.mkdir()
    script = outside / "s.py"
    script.write_text("open('o.txt', 'w').write('1')\n")
    tether("run", "-n", "x1", "--out", "o.txt", "--", sys.executable, "../elsewhere/s.py")
    script.write_text("open('o.txt', 'w').write('2')\n")  # the real cause, in no record
    tether("run", "-n", "x2", "--out", "o.txt", "--", sys.executable, str(script))
    d = project.diff_runs("x1", "x2")
    assert any("../elsewhere/s.py is outside the repository" in u for u in d.uncaptured)
    assert any(f"{script} is outside the repository" in u for u in d.uncaptured)
    assert "look for nondeterminism" not in tether("diff", "x1", "x2").output


def test_an_exit_code_only_one_run_has_is_no_cause(repo: Path, project: Project) -> None:
    with tether_api.start_run(name="inside") as run:  # logged in-process: no exit code
        tether_api.log_metric("m", 1.0)
    inside = project.get_run(run.id)
    launched = {**inside, "exit_code": 0, "status": "finished"}
    assert inside.get("exit_code") is None
    from tether.runs.compare import diff

    d = diff(project.ws, inside, launched)
    assert not any(c.startswith("status:") for c in d.causes), d.causes
    assert not any("working folder" in c for c in d.causes)
