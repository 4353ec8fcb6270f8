"""`tether run` as a user runs it: a real child process, its output, its exit code, its logging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import BIN, Tether, write_files
from tether.api import Project

TETHER = str(BIN / "tether")

SCRIPT = """
import sys, tether
tether.log_metric("acc", 0.75, step=1)
tether.log_param("batch", 32)
sys.stdout.buffer.write(b"plain line\\n\\xff\\xfe not utf-8\\n")
sys.stdout.flush()
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]) if "--exit" in sys.argv else 0)
"""


def tether_run(repo: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [TETHER, "run", *args],
        cwd=repo,
        capture_output=True,
        check=False,
        **kw,  # type: ignore[call-overload]
    )


def test_run_records_params_output_exit_code_and_child_logging(repo: Path, tether: Tether) -> None:
    write_files(repo, {"train.py": SCRIPT})
    big = "w" * 100_000
    proc = tether_run(
        repo, "-n", "t1", "-t", "team=nlp", "--", sys.executable, "train.py",
        "--lr", "0.1", "--epochs=3", "--verbose", "--notes", big, "--exit", "3",
    )  # fmt: skip
    assert proc.returncode == 3
    assert b"\xff\xfe not utf-8" in proc.stdout and b"to stderr" in proc.stderr  # teed
    assert b"t1" in proc.stderr and b"failed" in proc.stderr
    with Project.open(repo) as project:
        rec = project.get_run("t1")
        assert rec["status"] == "failed" and rec["exit_code"] == 3
        assert rec["params"]["lr"] == "0.1" and rec["params"]["epochs"] == "3"
        assert rec["params"]["verbose"] == "true" and rec["params"]["notes"] == big
        assert rec["params"]["batch"] == "32"  # logged by the child through the API
        assert rec["metrics"]["acc"]["last"] == 0.75
        assert rec["tags"] == {"team": "nlp"}
        log = project.ws.store.read_bytes(rec["log"])
        assert b"plain line\n\xff\xfe not utf-8\n" in log and b"to stderr" in log
        assert rec["code"]["entry_point"] == "train.py"
        (found,) = project.search_runs("params.epochs = 3 and params.verbose = 'true'")
        assert found.params["notes"] == big
    out = tether("runs", "list", "--where", "params.lr = 0.1", "--json").output
    assert [r["name"] for r in json.loads(out)] == ["t1"]


def test_a_command_that_cannot_start_exits_as_a_shell_would(repo: Path) -> None:
    proc = tether_run(repo, "-n", "missing", "--", "no-such-program-xyz")
    assert proc.returncode == 127 and b"cannot run no-such-program-xyz" in proc.stderr
    assert b"not found" in proc.stderr
    write_files(repo, {"job.sh": "#!/bin/sh\necho hi\n"})  # written, never chmod +x
    proc = tether_run(repo, "-n", "not-x", "--", "./job.sh")
    assert proc.returncode == 126 and b"chmod +x" in proc.stderr
    with Project.open(repo) as project:
        found = {r.name: (r.status, r.exit_code) for r in project.search_runs()}
    assert found == {"missing": ("failed", 127), "not-x": ("failed", 126)}


def test_the_commands_own_status_passes_through_and_tethers_own_failure_is_125(
    repo: Path,
) -> None:
    write_files(repo, {"args.py": "import argparse\nargparse.ArgumentParser().parse_args()\n"})
    proc = tether_run(repo, "--", sys.executable, "args.py", "--bogus")
    assert proc.returncode == 2 and b"unrecognized arguments" in proc.stderr  # argparse's 2
    proc = tether_run(repo, "--dep", "nope.csv", "--", sys.executable, "args.py")
    assert proc.returncode == 125 and b"--dep nope.csv does not exist" in proc.stderr
    assert tether_run(repo).returncode == 125  # no command: Tether's usage error, not a 2


def test_a_command_killed_by_a_signal_exits_128_plus_n_and_is_sealed_killed(repo: Path) -> None:
    write_files(
        repo, {"die.py": "import os, signal, sys\nos.kill(os.getpid(), int(sys.argv[1]))\n"}
    )
    term = tether_run(repo, "-n", "term", "--", sys.executable, "die.py", str(int(signal.SIGTERM)))
    kill = tether_run(repo, "-n", "kill", "--", sys.executable, "die.py", str(int(signal.SIGKILL)))
    assert (term.returncode, kill.returncode) == (143, 137)
    with Project.open(repo) as project:
        found = {r.name: (r.status, r.exit_code) for r in project.search_runs()}
    assert found == {"term": ("killed", 143), "kill": ("killed", 137)}


def test_sigterm_to_tether_run_ends_the_command_and_exits_143(repo: Path) -> None:
    write_files(
        repo,
        {
            "slow.py": "import time, tether\ntether.log_metric('x', 1)\n"
            "open('ready', 'w').close()\ntime.sleep(60)\n"
        },
    )
    proc = subprocess.Popen(
        [TETHER, "run", "-n", "slow", "--", sys.executable, "slow.py"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _wait_for(repo / "ready")  # the metric is logged and the handler set: now the signal
    proc.send_signal(signal.SIGTERM)  # as `kill PID` or a job scheduler would: tether only
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    with Project.open(repo) as project:
        rec = project.get_run("slow")
    assert rec["status"] == "killed" and rec["exit_code"] == 143


def test_ctrl_c_leaves_a_killed_run(repo: Path) -> None:
    write_files(
        repo,
        {
            "slow.py": "import time, tether\ntether.log_metric('x', 1)\n"
            "open('ready', 'w').close()\ntime.sleep(60)\n"
        },
    )
    proc = subprocess.Popen(
        [TETHER, "run", "-n", "slow", "--", sys.executable, "slow.py"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    _wait_for(repo / "ready")  # the metric is logged and the handler set: now the signal
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: to the whole group
    proc.communicate(timeout=30)
    assert proc.returncode == 130  # the child died of SIGINT: 128 + 2, as a shell says
    with Project.open(repo) as project:
        rec = project.get_run("slow")
        assert rec["status"] == "killed"
        assert rec["metrics"]["x"]["last"] == 1.0


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def test_commit_log_appends_to_the_ledger_and_commits_it(repo: Path, tether: Tether) -> None:
    import yaml

    write_files(repo, {"train.py": SCRIPT})
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "base"], cwd=repo, check=True)
    for lr in ("0.1", "0.2"):
        proc = tether_run(
            repo, "--commit-log", "-n", f"lr{lr}", "--", sys.executable, "train.py", "--lr", lr
        )
        assert proc.returncode == 0, proc.stderr
    entries = yaml.safe_load((repo / "experiment_log.yaml").read_text())
    assert [e["name"] for e in entries] == ["lr0.1", "lr0.2"]
    assert entries[1]["params"]["lr"] == "0.2" and entries[1]["metrics"] == {"acc": 0.75}
    assert entries[0]["code"]["commit"] and entries[0]["env"].startswith("blake3:")
    log = subprocess.run(
        ["git", "log", "--format=%s%n%b"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert "chore(experiments): log run lr0.2" in log and "Metrics: acc=0.75" in log
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
    )
    assert "experiment_log.yaml" not in status.stdout  # committed, nothing left over
    exported = yaml.safe_load(tether("runs", "export", "lr0.1", "lr0.2", "--yaml").output)
    assert exported == entries


def test_command_line_params_follow_argparse_names() -> None:
    from tether.runs.launch import params_from_argv

    argv = ["--lr", "0.1", "--max-features=3", "-v", "--amp", "--a[0]=1", "--epochs", "2"]
    assert params_from_argv(argv) == {
        "lr": "0.1",
        "max_features": "3",
        "amp": "true",
        "epochs": "2",
    }


def test_dep_and_out_flags_record_inputs_and_outputs(repo: Path, tether: Tether) -> None:
    from tether.hashing import hash_bytes

    write_files(repo, {"raw.csv": "a,b\n", "make.py": "open('model.bin', 'wb').write(b'm1')\n"})
    out = tether(
        "run", "-n", "made", "--dep", "raw.csv", "--out", "model.bin", "--out", "never.txt",
        "--", sys.executable, "make.py",
    ).output  # fmt: skip
    assert "--out never.txt was not written" in out
    with Project.open(repo) as project:
        rec = project.get_run("made")
    assert rec["data"]["inputs"] == {"raw.csv": hash_bytes(b"a,b\n")}
    assert rec["data"]["outputs"] == {"model.bin": hash_bytes(b"m1")}
    tether("run", "--dep", "nope.csv", "--", sys.executable, "make.py", expect=125)


MARKS = "open('ran.txt', 'w').write('the command ran')\n"


def test_a_dep_or_out_that_cannot_be_recorded_is_refused_before_the_command_runs(
    repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-folder"
    (outside / "sub").mkdir(parents=True)
    os.mkfifo(repo / "pipe")  # a FIFO would block the reader forever
    write_files(repo, {"job.py": MARKS})
    refused = {
        ("--out", str(outside)): "is a folder outside the repository",
        ("--out", ".tether"): ".tether",
        ("--out", ".tether/mine"): "inside .tether",
        ("--dep", str(outside)): "is a folder outside the repository",
        ("--dep", "pipe"): "pipe is a FIFO",
        ("--out", "pipe"): "pipe is a FIFO",
    }
    for (flag, path), why in refused.items():
        proc = tether_run(repo, flag, path, "--", sys.executable, "job.py", timeout=60)
        assert proc.returncode == 125, (flag, path, proc.stderr)
        assert why.encode() in proc.stderr and f"{flag} {path}".encode() in proc.stderr
        assert not (repo / "ran.txt").exists(), (flag, path)  # the command never started
    with Project.open(repo) as project:
        assert project.search_runs() == []  # and no run was recorded
        assert not any((repo / ".tether" / "runs").glob("*"))


def test_an_out_the_command_made_outside_the_repository_keeps_the_commands_status(
    repo: Path, tmp_path: Path
) -> None:
    made = tmp_path / "made-by-run"
    write_files(repo, {"job.py": f"import os, sys\nos.makedirs({str(made)!r})\nsys.exit(3)\n"})
    proc = tether_run(repo, "-n", "j", "--out", str(made), "--", sys.executable, "job.py")
    assert proc.returncode == 3  # the command's own status, not Tether's 125
    assert b"was not recorded" in proc.stderr and b"folder outside" in proc.stderr
    with Project.open(repo) as project:
        rec = project.get_run("j")
    assert (rec["status"], rec["exit_code"]) == ("failed", 3)


def test_an_existing_out_the_command_left_alone_is_not_recorded_as_its_output(
    repo: Path, tether: Tether
) -> None:
    from tether.hashing import hash_bytes

    write_files(
        repo,
        {"old.bin": "from last week", "model/w.bin": "w0", "job.py": MARKS},
    )
    out = tether(
        "run", "-n", "stale", "--out", "old.bin", "--out", "model", "--out", "ran.txt",
        "--json", "--", sys.executable, "job.py",
    ).output  # fmt: skip
    assert "--out old.bin was not written by this run" in out
    assert "--out model was not written by this run" in out
    with Project.open(repo) as project:
        rec = project.get_run("stale")
    assert rec["data"]["outputs"] == {"ran.txt": hash_bytes(b"the command ran")}
    summary = json.loads(out[out.index("{") :])
    assert summary["unchanged_outs"] == ["model", "old.bin"]


def test_a_script_whose_interpreter_is_gone_names_the_interpreter(
    repo: Path, tmp_path: Path
) -> None:
    gone = tmp_path / "old-venv" / "bin" / "python"  # a virtual environment since deleted
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for folder in (repo, bindir):
        write_files(folder, {"bad.py": f"#!{gone} -u\nprint('hi')\n"})
        os.chmod(folder / "bad.py", 0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    for how in ("./bad.py", "bad.py"):  # by path, and found on PATH
        proc = tether_run(repo, "-n", how, "--", how, env=env)
        assert proc.returncode == 127, proc.stderr  # as a shell says for a missing interpreter
        assert f"interpreter {gone}".encode() in proc.stderr, proc.stderr
        assert b"first line" in proc.stderr and b"not a file, nor on PATH" not in proc.stderr


def test_sighup_to_tether_run_reaches_the_command_and_seals_its_status(repo: Path) -> None:
    write_files(
        repo,
        {
            "slow.py": "import signal, sys, time, tether\n"
            "def bye(*_):\n"
            "    open('cleaned.txt', 'w').write('saved a checkpoint')\n"
            "    sys.exit(3)\n"
            "signal.signal(signal.SIGHUP, bye)\n"
            "tether.log_metric('x', 1)\n"
            "open('ready', 'w').close()\n"
            "time.sleep(60)\n"
        },
    )
    proc = subprocess.Popen(
        [TETHER, "run", "-n", "slow", "--", sys.executable, "slow.py"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _wait_for(repo / "ready")  # the metric is logged and the handler set: now the signal
    proc.send_signal(signal.SIGHUP)  # the terminal closed, or `kill -HUP PID`: tether only
    proc.communicate(timeout=30)
    assert proc.returncode == 3  # the command's own status: it got the HUP and chose to exit 3
    assert (repo / "cleaned.txt").read_text() == "saved a checkpoint"
    with Project.open(repo) as project:
        rec = project.get_run("slow")
    assert (rec["status"], rec["exit_code"]) == ("failed", 3)
