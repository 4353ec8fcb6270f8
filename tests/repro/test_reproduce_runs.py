"""`tether reproduce` of `tether run` runs, the way users met it: declared with --out and --dep,
started in a subfolder, a reproduction reproduced again, compare modes and tolerances typed by
hand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import BIN, Tether, git, write_files
from tether.api import Project

SCORE = """
import sys
rows = open(sys.argv[1]).read().split()
open(sys.argv[2], "w").write(str(sum(int(r) for r in rows)) + "\\n")
"""
LOGGED = "import tether\ntether.log_output('out.txt')\n"  # appended: logs what it wrote


def tether_cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The installed `tether`, as a user types it (its own process, its own folder)."""
    return subprocess.run(
        [str(BIN / "tether"), *argv], cwd=cwd, capture_output=True, text=True, check=False
    )


def scored(repo: Path) -> None:
    write_files(repo, {"score.py": SCORE, "rows.txt": "1 2 3\n"})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\nsub/out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "score")


def test_a_reproduction_can_be_reproduced_and_shows_no_code_change(
    repo: Path, tether: Tether
) -> None:
    scored(repo)
    write_files(repo, {"score.py": SCORE + LOGGED})  # a change not committed
    cmd = ["--", sys.executable, "score.py", "rows.txt", "out.txt"]
    assert tether_cli(repo, "run", "-n", "first", *cmd).returncode == 0
    with Project.open(repo) as project:
        v = project.reproduce("first")
        assert v.verdict == "REPRODUCED", (v.reason, v.outputs)
        first, again = project.get_run("first"), project.get_run(v.reproduction or "")
        assert again["code"]["diff"] == first["code"]["diff"]  # no `.tether` link in it
        assert project.diff_runs("first", again["id"]).code.same_patch
        v2 = project.reproduce(again["id"])
    assert v2.verdict == "REPRODUCED", (v2.reason, v2.outputs)


def test_a_reproduction_recorded_with_its_tether_link_still_rebuilds(repo: Path) -> None:
    """Records made before capture left the link out hold it in their diff."""
    scored(repo)
    write_files(repo, {"score.py": SCORE + LOGGED})
    assert (
        tether_cli(
            repo, "run", "-n", "first", "--", sys.executable, "score.py", "rows.txt", "out.txt"
        ).returncode
        == 0
    )
    with Project.open(repo) as project:
        rec = project.get_run("first")
        patch = project.ws.store.read_bytes(rec["code"]["diff"])
        link = (
            b"diff --git a/.tether b/.tether\nnew file mode 120000\nindex 0000000..1111111\n"
            b"--- /dev/null\n+++ b/.tether\n@@ -0,0 +1 @@\n+/somewhere/.tether\n"
            b"\\ No newline at end of file\n"
        )
        rec["code"]["diff"] = project.ws.store.put_bytes(link + patch)
        from tether.repro import reproduce as r

        tree = r._worktree(project.ws, rec)
        try:
            assert (tree / ".tether").resolve() == (repo / ".tether").resolve()
            assert "tether.log_output" in (tree / "score.py").read_text()
        finally:
            r._remove_worktree(project.ws, tree)


def test_a_run_declared_with_out_and_dep_is_reproduced_and_passes_the_gate(repo: Path) -> None:
    scored(repo)
    argv = ["--dep", "rows.txt", "--out", "out.txt", "--"]
    argv += [sys.executable, "score.py", "rows.txt", "out.txt"]
    assert tether_cli(repo, "run", "-n", "declared", *argv).returncode == 0
    write_files(repo, {"rows.txt": "7 7 7\n", "out.txt": "edited\n"})  # the work tree moves on
    with Project.open(repo) as project:
        v = project.reproduce("declared")
        assert v.verdict == "REPRODUCED", (v.reason, v.outputs)
        assert [(o.path, o.ok) for o in v.outputs] == [("out.txt", True)]
        again = project.get_run(v.reproduction or "")
        assert again["data"]["inputs"] == project.get_run("declared")["data"]["inputs"]
        gate = f"tags.reproduction_of = '{v.run}' and tags.verdict = 'REPRODUCED'"
        assert [r.id for r in project.search_runs(gate)] == [v.reproduction]


def test_a_run_started_in_a_subfolder_is_rerun_there(repo: Path, tmp_path: Path) -> None:
    scored(repo)
    write_files(repo, {"sub/count.py": SCORE, "sub/rows.txt": "4 5\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "sub")
    argv = ["--out", "out.txt", "--", sys.executable, "count.py", "rows.txt", "out.txt"]
    assert tether_cli(repo / "sub", "run", "-n", "insub", *argv).returncode == 0
    with Project.open(repo) as project:
        assert project.get_run("insub")["data"]["outputs"].keys() == {"sub/out.txt"}
        v = project.reproduce("insub")
        assert v.verdict == "REPRODUCED", (v.reason, v.outputs)
        assert [o.path for o in v.outputs] == ["sub/out.txt"]
        old = project.get_run("insub")
    proc = tether_cli(repo / "sub", "reproduce", "insub")
    assert proc.returncode == 0 and "REPRODUCED" in proc.stdout, proc.stdout + proc.stderr
    # a record made before the folder was kept: its entry point says where it ran
    from tether.repro.reproduce import _folder

    del old["cwd"]
    assert _folder(tmp_path, old) == tmp_path / "sub"


LOSS = """
import random, tether
tether.log_metric("loss", 1.0 + random.random() / 1000)  # never seeded: moves a little
tether.log_metric("overflow", float("inf"))
"""


def test_compare_modes_and_tolerances_as_typed(repo: Path, tether: Tether) -> None:
    write_files(repo, {"loss.py": LOSS})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "loss")
    assert tether_cli(repo, "run", "-n", "loss", "--", sys.executable, "loss.py").returncode == 0
    typo = tether("reproduce", "loss", "-c", "out.txt=exatc", expect=2).output
    assert "exatc" in typo and "exact, metrics, none" in typo
    junk = tether("reproduce", "loss", "-t", "loss=a lot", expect=2).output
    assert "1%" in junk
    tether("reproduce", "loss", "-t", "loss=-1", expect=2)
    with Project.open(repo) as project:
        strict = project.reproduce("loss")
    assert strict.verdict == "DIFFERENT"
    assert {m.key: m.ok for m in strict.metrics} == {"loss": False, "overflow": True}
    out = tether("reproduce", "loss", "-t", "loss=1%", "-t", "los=5%", expect=0).output
    assert "REPRODUCED" in out and "tolerance 0.01" in out
    assert "--tolerance los names no metric" in out  # a typo in the key is named too


def test_a_run_with_an_ignored_venvs_interpreter_is_reproduced(repo: Path) -> None:
    scored(repo)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(repo / ".venv2")], check=True
    )
    with open(repo / ".gitignore", "a") as f:
        f.write(".venv2/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "venv")
    argv = ["--out", "out.txt", "--", ".venv2/bin/python", "score.py", "rows.txt", "out.txt"]
    assert tether_cli(repo, "run", "-n", "venv", *argv).returncode == 0
    with Project.open(repo) as project:
        v = project.reproduce("venv")
    assert v.verdict == "REPRODUCED", (v.reason, v.outputs)


def test_a_command_that_cannot_start_is_failed_not_a_usage_error(
    repo: Path, tmp_path: Path
) -> None:
    scored(repo)
    exe = tmp_path / "tools" / "run.sh"  # a tool outside the repository...
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\necho 1 > out.txt\n")
    exe.chmod(0o755)
    assert tether_cli(repo, "run", "-n", "tool", "--out", "out.txt", "--", str(exe)).returncode == 0
    exe.unlink()  # ... uninstalled since
    proc = tether_cli(repo, "reproduce", "tool")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "could not start" in proc.stdout


def test_an_output_judged_by_metrics_must_still_be_written(repo: Path) -> None:
    scored(repo)
    maybe = SCORE.replace(
        "open(sys.argv[2]", "import os\nos.path.exists('flag') and open(sys.argv[2]"
    )
    write_files(repo, {"maybe.py": maybe, "flag": ""})  # flag: ignored, not in the rebuilt tree
    with open(repo / ".gitignore", "a") as f:
        f.write("flag\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "maybe")
    argv = ["--out", "out.txt", "--", sys.executable, "maybe.py", "rows.txt", "out.txt"]
    assert tether_cli(repo, "run", "-n", "maybe", *argv).returncode == 0
    with Project.open(repo) as project:
        v = project.reproduce("maybe", modes={"out.txt": "metrics"})
    assert v.verdict == "DIFFERENT", (v.reason, v.outputs)
    assert v.outputs[0].now is None


def test_a_run_still_running_is_not_reproduced(repo: Path) -> None:
    scored(repo)
    with Project.open(repo) as project, project.start_run(name="live") as live:
        live.log_metric("loss", 1.0)
        v = project.reproduce("live")
        assert v.verdict == "FAILED" and "still running" in v.reason


def test_the_rebuilt_tree_keeps_its_own_stat_cache(repo: Path, tether: Tether) -> None:
    """Its files share the user's paths: their rows must neither replace the user's (all of
    `data/` hashed again by the next `tether status`) nor be taken for the user's files."""
    write_files(repo, {"score.py": SCORE, "data/rows.txt": "1 2 3\n"})
    tether("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    argv = ["--out", "out.txt", "--", sys.executable, "score.py", "data/rows.txt", "out.txt"]
    assert tether_cli(repo, "run", "-n", "data", *argv).returncode == 0
    tether("status")
    mine = (repo / "data" / "rows.txt").stat().st_ino
    with Project.open(repo) as project:
        assert project.reproduce("data").verdict == "REPRODUCED"
        rows = project.ws.statcache.under("data")
    assert rows["data/rows.txt"][1] == mine
    assert not list((repo / ".tether").glob("state-*"))  # gone with the tree


def test_a_failed_run_is_not_called_reproduced_by_a_rerun_that_works(repo: Path) -> None:
    scored(repo)
    flaky = "import os, sys\n" + SCORE + "os.environ.get('FAIL') and sys.exit(1)\n"
    write_files(repo, {"flaky.py": flaky})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "flaky")
    argv = ["--out", "out.txt", "--", sys.executable, "flaky.py", "rows.txt", "out.txt"]
    proc = subprocess.run(
        [str(BIN / "tether"), "run", "-n", "flaky", *argv],
        cwd=repo,
        env={**os.environ, "FAIL": "1"},  # it failed that time (wrote its out, then exit 1)
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 1
    with Project.open(repo) as project:
        v = project.reproduce("flaky")  # the re-run would pass
    assert v.verdict == "FAILED" and "only a finished run" in v.reason


def test_no_tolerance_bridges_a_number_and_an_infinity() -> None:
    from tether.repro.verdict import MetricCheck

    inf = float("inf")
    assert not MetricCheck("loss", 5.0, inf, 0.01).ok  # blew up on the re-run
    assert not MetricCheck("loss", inf, -inf, 0.5).ok
    assert MetricCheck("loss", -inf, -inf, 0.0).ok
    assert MetricCheck("loss", 100.0, 100.5, 0.01).ok


def test_a_run_recorded_before_declared_outs_were_kept_is_reproduced(repo: Path) -> None:
    from tether.runs.record import dump_record

    scored(repo)
    argv = ["--out", "out.txt", "--", sys.executable, "score.py", "rows.txt", "out.txt"]
    assert tether_cli(repo, "run", "-n", "old", *argv).returncode == 0
    with Project.open(repo) as project:
        record = project.get_run("old")
        del record["declared"], record["cwd"]  # as an older Tether sealed it
        body = {k: v for k, v in record.items() if k not in ("tether", "kind", "format")}
        oid = project.ws.store.put_bytes(dump_record("run", body, record["links"]))
        project.ws.refs.set(f"runs/{record['id']}", [oid])
        v = project.reproduce(record["id"])
    assert v.verdict == "REPRODUCED", (v.reason, v.outputs)


def test_an_out_the_rerun_does_not_write_is_missing_not_the_diffs_copy(repo: Path) -> None:
    scored(repo)
    lazy = "import os, sys\nif os.environ.get('WRITE'):\n    " + "\n    ".join(
        SCORE.strip().splitlines()
    )
    write_files(repo, {"lazy.py": lazy + "\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "lazy")
    argv = ["--out", "kept.txt", "--", sys.executable, "lazy.py", "rows.txt", "kept.txt"]
    env = {**os.environ, "WRITE": "1"}
    for name in ("first", "second"):  # kept.txt is not ignored: the second run's diff holds it
        proc = subprocess.run(
            [str(BIN / "tether"), "run", "-n", name, *argv], cwd=repo, env=env, check=False
        )
        assert proc.returncode == 0
    with Project.open(repo) as project:
        v = project.reproduce("second")  # WRITE unset: the re-run writes nothing
    assert v.verdict == "DIFFERENT", (v.reason, v.outputs)
    assert v.outputs[0].now is None


def test_a_killed_run_is_not_reproduced_and_diff_names_how_each_run_ended(
    repo: Path, tether: Tether
) -> None:
    scored(repo)
    dies = SCORE + "import os, signal\nos.environ.get('DIE') and os.kill(os.getpid(), 15)\n"
    write_files(repo, {"dies.py": dies})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "dies")
    argv = ["--out", "out.txt", "--", sys.executable, "dies.py", "rows.txt", "out.txt"]
    for name, env in (("T1", {"DIE": "1"}), ("T2", {})):  # T1 is killed by SIGTERM
        proc = subprocess.run(
            [str(BIN / "tether"), "run", "-n", name, *argv],
            cwd=repo, env={**os.environ, **env}, capture_output=True, check=False,
        )  # fmt: skip
        assert proc.returncode == (143 if env else 0)
    with Project.open(repo) as project:
        v = project.reproduce("T1")  # the re-run would finish
        assert v.verdict == "FAILED" and "killed (exit code 143)" in v.reason
        d = project.diff_runs("T1", "T2")
    assert d.causes[0] == "status: killed (exit 143) → finished (exit 0)"
    out = tether("diff", "T1", "T2").output
    assert "killed (exit 143) → finished (exit 0)" in out


def test_a_bare_tolerance_above_one_is_refused_as_a_likely_typo(repo: Path, tether: Tether) -> None:
    write_files(repo, {"loss.py": LOSS})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "loss")
    assert tether_cli(repo, "run", "-n", "loss", "--", sys.executable, "loss.py").returncode == 0
    said = " ".join(tether("reproduce", "loss", "-t", "loss=5", expect=2).output.split())
    assert "write 5% or 0.05" in said
    assert "REPRODUCED" in tether("reproduce", "loss", "-t", "loss=500%").output  # as meant


TWO_OUTS = """import random
open("out.txt", "w").write(str(random.random()))
open("keep.txt", "w").write("kept\\n")
"""


def test_compare_paths_typed_in_a_subfolder_are_taken_from_there_like_out(repo: Path) -> None:
    write_files(repo, {"sub/two.py": TWO_OUTS})
    with open(repo / ".gitignore", "a") as f:
        f.write("sub/out.txt\nsub/keep.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two outs")
    sub = repo / "sub"
    argv = ["--out", "out.txt", "--out", "keep.txt", "--", sys.executable, "two.py"]
    assert tether_cli(sub, "run", "-n", "two", *argv).returncode == 0
    proc = tether_cli(sub, "reproduce", "two", "-c", "out.txt=none")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "names no output" not in proc.stdout
    assert "sub/out.txt: differs (none: not judged by bytes)" in proc.stdout
    # typed from the top of the repository, as the verdict shows it, it works there too
    proc = tether_cli(sub, "reproduce", "two", "-c", "sub/out.txt=none")
    assert proc.returncode == 0 and "names no output" not in proc.stdout, proc.stdout
    proc = tether_cli(sub, "reproduce", "two", "-c", "ou.txt=none")  # a typo is still named
    assert proc.returncode == 1 and "--compare ou.txt names no output" in proc.stdout
