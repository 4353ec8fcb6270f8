"""``tether run -- CMD ARGS...``: run a command as a child and record it as a run.

The child inherits the run's lock (so the run stays live while either process lives) and finds
the run through ``TETHER_RUN_ID``/``TETHER_RUN_DIR``, so ``tether.log_metric`` inside it logs into
the same run. Its stdout and stderr are copied to ours as they come and kept, raw bytes, in the
run's log. Ctrl-C reaches the child (same process group); we wait for it and seal ``killed``.
SIGTERM and SIGHUP sent to Tether alone are passed on to the child: it decides, we wait and seal
its status.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tether.errors import LaunchError, TetherError, UsageError
from tether.runs import lifecycle
from tether.runs.journal import VALID_KEY
from tether.runs.live import ENV_RUN_DIR, ENV_RUN_ID, LiveRun, refuse_keys
from tether.workspace.repo import Workspace


@dataclass
class Launched:
    run_id: str
    name: str
    status: str
    exit_code: int  # as a shell reports it: 128+N when the command died of signal N
    record: str
    missing_outs: list[str] = field(default_factory=list)  # declared with --out, not written
    unchanged_outs: list[str] = field(default_factory=list)  # existed, left as they were
    warnings: list[str] = field(default_factory=list)  # what the record could not capture


def params_from_argv(argv: list[str]) -> dict[str, str]:
    """``--key value`` and ``--key=value`` become params; a bare ``--flag`` is ``true``.
    Dashes in a key become underscores, as argparse names them (``--max-features`` is
    ``max_features``), so a script that logs its parsed arguments logs the same keys."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--") or arg == "--" or len(arg) < 3:
            continue
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i < len(argv) and not argv[i].startswith("--"):
                value = argv[i]
                i += 1
            else:
                value = "true"
        out[key.replace("-", "_")] = value
    return {k: v for k, v in out.items() if VALID_KEY.match(k)}  # `--a[0]=1` is not a param


def launch(
    ws: Workspace,
    command: list[str],
    *,
    name: str | None = None,
    experiment: str | None = None,
    tags: dict[str, str] | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    cwd: Path | None = None,
    deps: list[str] | None = None,
    outs: list[str] | None = None,
) -> Launched:
    """Run ``command`` as a recorded run. ``deps`` are stored and recorded as inputs before it
    starts (their content then), ``outs`` as outputs after it ends (those it wrote). A --dep or
    --out that could never be recorded is refused before anything starts: no run, no command."""
    if not command:
        raise UsageError("say what to run: tether run -- python train.py --lr 0.1")
    before = check_paths(ws, deps or [], outs or [])
    started = lifecycle.begin(
        ws,
        name=name,
        experiment=experiment,
        tags=tags,
        command=command,
        params=params_from_argv(command[1:]),
        entry_point=_entry(ws, command),
        cwd=cwd,
        declared={"deps": list(deps or []), "outs": list(outs or [])},
    )
    declared = LiveRun(ws, started.id, started.folder, owner=False)  # logs, never seals
    _log_deps(ws, started, declared, deps or [])
    try:
        code, interrupted = execute(ws, started, command, stdout=stdout, stderr=stderr, cwd=cwd)
        outcome = _record_outs(declared, outs or [], before)
    finally:
        declared.end()
    status = status_of(code, interrupted)
    try:
        record = lifecycle.seal(ws, started.folder, status, exit_code=code)
    finally:
        os.close(started.lock_fd)
    done = Launched(started.id, started.start["name"], status, code, record, outcome.missing)
    done.unchanged_outs = outcome.unchanged
    done.warnings = [*started.warnings, *outcome.warnings]
    return done


def _log_deps(
    ws: Workspace, started: lifecycle.Started, declared: LiveRun, deps: list[str]
) -> None:
    """Record the inputs before the command starts; if that fails, the command never runs and
    the run is sealed at once (never left to look live, then killed)."""
    try:
        for dep in deps:
            declared.log_input(dep)
    except BaseException as exc:
        declared.end()
        status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
        try:
            lifecycle.seal(ws, started.folder, status)
        finally:
            os.close(started.lock_fd)
        raise


def check_paths(ws: Workspace, deps: list[str], outs: list[str]) -> dict[str, str | None]:
    """Refuse every --dep and --out that could not be recorded (absent input, FIFO, a folder
    outside the repository, .tether) before the run starts; returns each out's fingerprint
    now (None when absent), to tell afterwards which ones the command wrote."""
    from tether.workspace.add import check_storable

    for flag, paths in (("--dep", deps), ("--out", outs)):
        for path in paths:
            if flag == "--dep" and not Path(path).exists():
                raise UsageError(f"--dep {path} does not exist")
            try:
                refuse_keys(path)
                check_storable(ws, path)
            except TetherError as exc:
                raise UsageError(f"{flag} {path}: {exc}") from exc
    return {out: _fingerprint(Path(out)) for out in outs}


@dataclass
class _Outs:
    missing: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _record_outs(declared: LiveRun, outs: list[str], before: dict[str, str | None]) -> _Outs:
    """Record the outs the command wrote. One it left as it was (an existing file never
    rewritten) is not its output; one that cannot be stored is a warning: the command ran, so
    its run is recorded either way, with its own status."""
    found = _Outs()
    for out in sorted(set(outs)):
        now = _fingerprint(Path(out))
        if now is None:
            found.missing.append(out)
        elif now and now == before.get(out):
            found.unchanged.append(out)
        else:
            try:
                declared.log_output(out)
            except TetherError as exc:
                found.warnings.append(f"--out {out} was not recorded: {exc}")
    return found


def _fingerprint(path: Path) -> str | None:
    """Every file's stat under ``path`` in one hash (None when absent): equal means untouched."""
    from tether.workspace.scan import fingerprint, scan

    if not path.exists():
        return None
    try:
        return fingerprint(scan(path))
    except (OSError, TetherError):
        return ""  # unreadable now: not "unchanged", let recording it say what is wrong


def execute(
    ws: Workspace,
    started: lifecycle.Started,
    command: list[str],
    *,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int, bool]:
    """Run ``command`` as the live run ``started``'s process: (exit status as a shell reports
    it, interrupted?). A command that cannot start seals the run ``failed`` and raises
    :class:`LaunchError` (127 not found, 126 not executable, 125 otherwise)."""
    child_env = {
        **os.environ,
        **(env or {}),
        ENV_RUN_ID: started.id,
        ENV_RUN_DIR: str(started.folder),
        "PYTHONUNBUFFERED": "1",
    }
    os.set_inheritable(started.lock_fd, True)
    interrupted = False
    try:
        proc = subprocess.Popen(
            command,
            env=child_env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(started.lock_fd,),
        )
    except OSError as exc:
        code, why = _not_started(exc, command[0], child_env.get("PATH"))
        lifecycle.seal(ws, started.folder, "failed", exit_code=code)
        os.close(started.lock_fd)
        raise LaunchError(
            f"cannot run {command[0]}: {why} (run {started.id} sealed failed)", code
        ) from exc
    with open(started.folder / "output.log", "ab") as log:
        lock = threading.Lock()
        pumps = [
            _pump(proc.stdout, stdout or sys.stdout.buffer, log, lock),  # type: ignore[arg-type]
            _pump(proc.stderr, stderr or sys.stderr.buffer, log, lock),  # type: ignore[arg-type]
        ]
        main = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.getsignal(sig) for sig in FORWARDED}
        if main:  # only the main thread may set handlers: `kill` of us reaches the child too
            for sig in FORWARDED:
                signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
        try:
            while True:
                try:
                    code = proc.wait()
                    break
                except KeyboardInterrupt:
                    interrupted = True  # the child got the same Ctrl-C: let it finish
        finally:
            if main:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            for pump in pumps:
                pump.join()
    if code < 0:  # killed by signal N: seal `killed`, and report 128+N as a shell does
        return 128 - code, True
    return code, interrupted


# `kill PID`, a scheduler's stop, a closed terminal: passed to the command, which decides; Tether
# waits for it and seals the run with its status (Ctrl-C, SIGINT, reaches the whole group itself)
FORWARDED = (signal.SIGTERM, signal.SIGHUP)


def status_of(code: int, interrupted: bool) -> str:
    return "finished" if code == 0 else ("killed" if interrupted or code < 0 else "failed")


def _not_started(exc: OSError, program: str, path: str | None) -> tuple[int, str]:
    """The status a shell gives a command it cannot start, and why in words."""
    if isinstance(exc, FileNotFoundError):
        found = program if "/" in program else shutil.which(program, path=path)
        if found is not None and os.path.isfile(found):
            return 127, _missing_interpreter(found)
        return 127, "command not found (not a file, nor on PATH)"
    if isinstance(exc, PermissionError) or exc.errno == errno.ENOEXEC:
        return (
            126,
            f"not executable ({exc.strerror}): `chmod +x` it, or run it with its interpreter",
        )
    return 125, exc.strerror or str(exc)


def _missing_interpreter(script: str) -> str:
    """Why a file that exists could not start: the interpreter its ``#!`` line names is gone
    (a deleted virtual environment, another machine's path), or a binary's loader is."""
    try:
        with open(script, "rb") as f:
            first = f.readline(512)
    except OSError:
        first = b""
    if first.startswith(b"#!"):
        line = first[2:].decode(errors="replace").strip()
        interpreter = line.split()[0] if line.split() else "(none)"
        return (
            f"its interpreter {interpreter} (named in its first line, #!{line}) is missing: "
            "fix that line, or run the script with an interpreter that exists"
        )
    return "the program exists but its loader or interpreter is missing"


def _entry(ws: Workspace, command: list[str]) -> str | None:
    """The script a command runs (``python train.py`` -> ``train.py``), repository-relative."""
    for arg in command[:3]:
        if arg.endswith((".py", ".ipynb")):
            path = Path(arg).absolute()
            try:
                return path.resolve().relative_to(ws.root.resolve()).as_posix()
            except ValueError:
                return arg
    return Path(command[0]).name


def _pump(
    source: IO[bytes], sink: IO[bytes], log: IO[bytes], lock: threading.Lock
) -> threading.Thread:
    def copy() -> None:
        for chunk in iter(lambda: source.read1(65536), b""):  # type: ignore[attr-defined]
            try:
                sink.write(chunk)
                sink.flush()
            except (OSError, ValueError):
                pass  # our terminal went away: keep logging
            with lock:
                log.write(chunk)
                log.flush()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread
