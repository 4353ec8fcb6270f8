"""Tether against DVC on the same data, side by side: add, status, checkout, push, pull and S3.

Run by ``make bench`` (``.venv/bin/python benchmarks/bench_data.py``). ``--quick`` is a small smoke
run (about two minutes), ``--workloads`` picks a subset, ``--link hardlink`` compares hardlink
caches instead of copies. Everything is written under ``benchmarks/.work/`` (git-ignored); the
results also go to ``benchmarks/.work/results.json``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

from blake3 import blake3

from _shared import CommandError, chosen_workloads, run, snapshot_tether, tail

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
WORK = HERE / ".work"
LOGS = WORK / "logs"
BIN = Path(sys.executable).parent
TETHER_EXE = BIN / "tether"
TETHER_SRC = WORK / "tether-src"  # a copy of src/: one run measures one version of Tether
DVC_VENV = HERE / ".venv-dvc"
DVC_EXE = DVC_VENV / "bin" / "dvc"
DVC_VERSION = "3.67.1"
MIB = 1 << 20
CHUNK = 8 * MIB
PER_FOLDER = 100
MODIFIED = 10
BUCKET = "bench"

TETHER_SYNC = (
    "objects are written without per-file fsync, then one syncfs() of the cache's filesystem "
    "per batch (tether/_fs.py sync_filesystem); pointer and config files are fsync'ed"
)
DVC_SYNC = "no fsync of objects or workspace files (only SQLite's own syncs for its state/index)"


# -- workloads and their data ----------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    name: str
    files: int
    size: int

    @property
    def target(self) -> str:
        return "data.bin" if self.files == 1 else "data"

    @property
    def label(self) -> str:
        if self.files == 1:
            return f"1 file of {human(self.size)}"
        return f"{self.files:,} files of {human(self.size)}"


FULL = {
    "bigfile": Workload("bigfile", 1, 1 << 30),
    "files4k": Workload("files4k", 20_000, 4096),
    "files128": Workload("files128", 100_000, 128),
    "s3": Workload("s3", 2_000, 4096),
}
QUICK = {
    "bigfile": Workload("bigfile", 1, 64 * MIB),
    "files4k": Workload("files4k", 2_000, 4096),
    "files128": Workload("files128", 5_000, 128),
    "s3": Workload("s3", 200, 4096),
}


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def content(seed: str, i: int, size: int) -> bytes:
    """Deterministic, distinct bytes for file ``i`` (BLAKE3 in extendable-output mode)."""
    return blake3(f"{seed}:{i}".encode()).digest(length=size)


def file_rel(i: int) -> str:
    return f"d{i // PER_FOLDER:04d}/f{i:06d}.bin"


def big_chunks(size: int) -> Iterator[bytes]:
    xof = blake3(b"bench:bigfile")
    for offset in range(0, size, CHUNK):
        yield xof.digest(length=min(CHUNK, size - offset), seek=offset)


@cache
def big_digest(size: int) -> str:
    hasher = blake3()
    for chunk in big_chunks(size):
        hasher.update(chunk)
    return str(hasher.hexdigest())


def generate(wl: Workload, repo: Path) -> None:
    if wl.files == 1:
        with open(repo / wl.target, "wb") as f:
            for chunk in big_chunks(wl.size):
                f.write(chunk)
        return
    base = repo / wl.target
    for i in range(wl.files):
        path = base / file_rel(i)
        if i % PER_FOLDER == 0:
            path.parent.mkdir(parents=True)
        path.write_bytes(content(wl.name, i, wl.size))


def modified_indexes(wl: Workload) -> list[int]:
    return [k * wl.files // MODIFIED for k in range(MODIFIED)]


def modify(wl: Workload, repo: Path) -> None:
    """Change 10 files (one big file: 10 spots in it) through a new file and a rename, as editors
    and pipelines do, so that a hardlinked cache object is never written through."""
    target = repo / wl.target
    if wl.files == 1:
        tmp = target.with_name(".modified.tmp")
        shutil.copyfile(target, tmp)
        with open(tmp, "r+b") as f:
            for k in range(MODIFIED):
                f.seek(k * wl.size // MODIFIED)
                f.write(b"modified")
        os.replace(tmp, target)
        return
    for i in modified_indexes(wl):
        path = target / file_rel(i)
        tmp = path.with_name(".modified.tmp")
        tmp.write_bytes(content("modified", i, wl.size))
        os.replace(tmp, path)


def verify(wl: Workload, repo: Path) -> str:
    """'' when the tracked data on disk is what was generated (the modified files reverted)."""
    target = repo / wl.target
    if wl.files == 1:
        ok = target.is_file() and file_digest(target) == big_digest(wl.size)
        return "" if ok else f"{wl.target} does not hold the generated bytes"
    found = sum(len(files) for _, _, files in os.walk(target))
    if found != wl.files:
        return f"{found} files in {wl.target}, expected {wl.files}"
    sample = modified_indexes(wl) + [(i + 7) % wl.files for i in modified_indexes(wl)]
    for i in sample:
        if (target / file_rel(i)).read_bytes() != content(wl.name, i, wl.size):
            return f"{wl.target}/{file_rel(i)} does not hold the generated bytes"
    return ""


def file_digest(path: Path) -> str:
    hasher = blake3(max_threads=blake3.AUTO)
    hasher.update_mmap(str(path))
    return str(hasher.hexdigest())


def rmtree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# -- running commands ------------------------------------------------------------------------
@dataclass
class Measure:
    seconds: float | None = None
    peak_mib: float | None = None
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# Runs one command and reports "seconds peak_kib exit_code". A fork from this small process
# (not a vfork from the benchmark, whose own high-water RSS the kernel would carry into the
# child's ru_maxrss at exec) makes wait4's ru_maxrss the command's own peak.
LAUNCHER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(out, "w") as f:
    f.write(f"{seconds} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_timed(
    argv: list[str], cwd: Path, env: dict[str, str], log: Path, timeout: float
) -> Measure:
    """Wall-clock seconds and peak RSS (ru_maxrss: the command and what it waited for)."""
    report = log.with_suffix(".rusage")
    report.unlink(missing_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER, str(report), *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a timeout kills the command with its launcher
        )
        try:
            proc.wait(timeout)
        except BaseException as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise CommandError(f"`{' '.join(argv)}` took over {timeout:.0f} s") from None
            raise
    seconds, peak_kib, code = report.read_text().split()
    if code != "0":
        raise CommandError(
            f"`{' '.join(argv)}` exited with {code} after {float(seconds):.1f} s in {cwd} "
            f"(log: {log}):\n" + tail(log.read_text(errors="replace"))
        )
    return Measure(float(seconds), int(peak_kib) / 1024)


def base_env() -> dict[str, str]:
    """The caller's environment without TETHER_*/AWS_* settings that would change the runs."""
    drop = ("TETHER_", "AWS_", "DVC_", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(WORK / "no-aws-config")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


# -- the two tools ---------------------------------------------------------------------------
class Tool:
    name = ""
    exe = Path()

    def __init__(self, repo: Path, env: dict[str, str]) -> None:
        self.repo = repo
        self.env = env
        self.error = ""  # the first failure: later steps of the workload are skipped

    def argv(self, *args: str) -> list[str]:
        return [str(self.exe), *args]

    def run(self, *args: str) -> str:
        return run(self.argv(*args), cwd=self.repo, env=self.env)

    def init(self, link: str) -> None:
        raise NotImplementedError

    def add_remote(self, name: str, url: str, endpoint: str = "") -> None:
        raise NotImplementedError

    def drop_cache(self) -> None:
        raise NotImplementedError


class Tether(Tool):
    name = "tether"
    exe = TETHER_EXE

    def __init__(self, repo: Path, env: dict[str, str]) -> None:
        # the snapshot comes first on sys.path; .pyc files go to .work (src/ is not written to)
        pycache = str(WORK / "pycache")
        super().__init__(
            repo, {**env, "PYTHONPATH": str(TETHER_SRC), "PYTHONPYCACHEPREFIX": pycache}
        )

    def init(self, link: str) -> None:
        run(["git", "init", "-q"], cwd=self.repo)
        self.run("init")
        if link == "hardlink":
            self.run("config", "set", "cache.link", "hardlink")
            # as root Tether copies instead of linking unless told that root accepts the risk;
            # DVC links regardless, so the comparison sets it
            self.run("config", "set", "--local", "cache.link_as_root", "true")

    def add_remote(self, name: str, url: str, endpoint: str = "") -> None:
        self.run("remote", "add", name, url)
        if endpoint:
            self.run("config", "set", f"remote.{name}.endpoint_url", endpoint)

    def drop_cache(self) -> None:
        """As in a fresh clone: .tether/ keeps only the local config (objects, packs, state go)."""
        for path in (self.repo / ".tether").iterdir():
            if path.name != "config.toml":
                rmtree(path)


class Dvc(Tool):
    name = "dvc"
    exe = DVC_EXE

    def __init__(self, repo: Path, env: dict[str, str]) -> None:
        self.site_cache = repo.parent / "dvc-site-cache"  # DVC's state and index databases
        super().__init__(
            repo,
            {
                **env,
                "DVC_NO_ANALYTICS": "1",
                "DVC_SITE_CACHE_DIR": str(self.site_cache),
                "DVC_GLOBAL_CONFIG_DIR": str(repo.parent / "dvc-global"),
                "DVC_SYSTEM_CONFIG_DIR": str(repo.parent / "dvc-system"),
            },
        )

    def init(self, link: str) -> None:
        run(["git", "init", "-q"], cwd=self.repo)
        self.run("init", "-q")
        self.run("config", "core.analytics", "false")
        self.run("config", "cache.type", link)

    def add_remote(self, name: str, url: str, endpoint: str = "") -> None:
        self.run("remote", "add", "-d", name, url)
        if endpoint:
            self.run("remote", "modify", name, "endpointurl", endpoint)

    def drop_cache(self) -> None:
        for path in (self.repo / ".dvc" / "cache", self.repo / ".dvc" / "tmp", self.site_cache):
            rmtree(path)


def make_tools(base: Path, env: dict[str, str]) -> list[Tool]:
    tools: list[Tool] = [Tether(base / "tether" / "repo", env), Dvc(base / "dvc" / "repo", env)]
    for tool in tools:
        tool.repo.mkdir(parents=True)
    return tools


def ensure_dvc() -> str:
    """DVC in its own virtualenv (benchmarks/.venv-dvc); returns its version."""
    if not DVC_EXE.exists():
        python = shutil.which("python3.11") or sys.executable
        print(f"installing DVC {DVC_VERSION} into {DVC_VENV} ...", flush=True)
        run([python, "-m", "venv", DVC_VENV])
        pip = DVC_VENV / "bin" / "pip"
        try:
            run([pip, "install", "-q", f"dvc[s3]=={DVC_VERSION}"])
        except CommandError as exc:
            print(f"dvc[s3] failed, installing plain dvc (no S3): {exc}", flush=True)
            run([pip, "install", "-q", f"dvc=={DVC_VERSION}"])
    version = run([DVC_EXE, "--version"]).strip()
    if version != DVC_VERSION:
        raise CommandError(f"{DVC_EXE} is DVC {version}, not {DVC_VERSION}: remove {DVC_VENV}")
    return version


def dvc_sync_calls() -> tuple[int, list[str]]:
    """Scan DVC's installed sources for fsync/syncfs/sync calls: (files scanned, files with one)."""
    site = next((DVC_VENV / "lib").glob("python*/site-packages"))
    pattern = re.compile(r"\b(fsync|fdatasync|syncfs)\b|\bos\.sync\(")
    files = [p for pkg in ("dvc", "dvc_data", "dvc_objects") for p in (site / pkg).rglob("*.py")]
    hits = [
        str(p.relative_to(site)) for p in files if pattern.search(p.read_text(errors="replace"))
    ]
    return len(files), hits


# -- steps -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    name: str
    args: Callable[[Workload], list[str]]
    prepare: Callable[[Tool, Workload], None] | None = None
    verify: bool = False


def remove_data(tool: Tool, wl: Workload) -> None:
    rmtree(tool.repo / wl.target)


def add_folder_remote(tool: Tool, wl: Workload) -> None:
    remote = tool.repo.parent / "remote"
    remote.mkdir()
    tool.add_remote("origin", str(remote))


def empty_cache(tool: Tool, wl: Workload) -> None:
    tool.drop_cache()
    remove_data(tool, wl)


LOCAL_STEPS = [
    Step("add (cold)", lambda wl: ["add", wl.target]),
    Step("add (unchanged)", lambda wl: ["add", wl.target]),
    Step("status (unchanged)", lambda wl: ["status"]),
    Step("status (10 modified)", lambda wl: ["status"], lambda t, wl: modify(wl, t.repo)),
    Step("checkout (data deleted)", lambda wl: ["checkout"], remove_data, verify=True),
    Step("push (folder remote)", lambda wl: ["push"], add_folder_remote),
    Step("pull (empty cache)", lambda wl: ["pull"], empty_cache, verify=True),
]
S3_STEPS = [
    Step("push", lambda wl: ["push"]),
    Step("push (unchanged)", lambda wl: ["push"]),
    Step("pull (empty cache)", lambda wl: ["pull"], empty_cache, verify=True),
]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def measure_step(step: Step, tool: Tool, wl: Workload, timeout: float) -> Measure:
    if tool.error:
        return Measure(error="skipped: an earlier step failed")
    log = LOGS / f"{wl.name}-{tool.name}-{slug(step.name)}.log"
    try:
        if step.prepare:
            step.prepare(tool, wl)
        os.sync()  # neither tool pays for writes the generator or the other tool left behind
        load = os.getloadavg()[0]
        measure = run_timed(tool.argv(*step.args(wl)), tool.repo, tool.env, log, timeout)
        measure.extra["load"] = round(load, 2)
        if step.verify:
            measure.error = verify(wl, tool.repo)
    except (CommandError, OSError) as exc:
        measure = Measure(error=str(exc))
    tool.error = measure.error
    return measure


# -- results and targets ---------------------------------------------------------------------
@dataclass
class Row:
    step: str
    tether: Measure
    dvc: Measure
    target: str = ""

    @property
    def ratio(self) -> float | None:
        t, d = self.tether.seconds, self.dvc.seconds
        if t is None or d is None or self.tether.error or self.dvc.error:
            return None
        return d / t


@dataclass
class WorkloadResult:
    name: str
    label: str
    floors: dict[str, float] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)


RATIO_TARGETS = {  # dvc/tether, for 20k and 100k files; the 3x ones in copy mode
    "add (cold)": 3.0,
    "add (unchanged)": 10.0,
    "status (unchanged)": 10.0,
    "status (10 modified)": 10.0,
    "checkout (data deleted)": 3.0,
    "push (folder remote)": 10.0,
    "pull (empty cache)": 10.0,
}


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def local_target(row: Row, wl: Workload, floors: dict[str, float], link: str) -> str:
    parts = []
    want = RATIO_TARGETS.get(row.step)
    if wl.files >= 20_000 and want and (want > 3.0 or link == "copy"):
        parts.append(f">={want:g}x " + verdict(row.ratio is not None and row.ratio >= want))
    seconds = row.tether.seconds if not row.tether.error else None
    if wl.files >= 100_000 and row.step == "status (unchanged)":
        parts.append("<1.5 s " + verdict(seconds is not None and seconds < 1.5))
    if wl.files == 1 and row.step == "add (cold)" and "total" in floors:
        limit = 1.5 * floors["total"]
        parts.append(f"<={limit:.2f} s " + verdict(seconds is not None and seconds <= limit))
    return "; ".join(parts)


def show(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def cell(m: Measure) -> str:
    return "FAIL" if m.error else show(m.seconds)


def print_row(prefix: str, row: Row, extra: str = "") -> None:
    t, d = row.tether, row.dvc
    print(
        f"{prefix:<9} {row.step:<24} tether {cell(t):>7} s {show(t.peak_mib, '.0f'):>5} MiB | "
        f"dvc {cell(d):>7} s {show(d.peak_mib, '.0f'):>5} MiB | "
        f"dvc/tether {show(row.ratio, '.1f')}x | load {show(t.extra.get('load'), '.1f')}"
        f"/{show(d.extra.get('load'), '.1f')}{extra}" + (f"  [{row.target}]" if row.target else ""),
        flush=True,
    )
    for name, m in (("tether", t), ("dvc", d)):
        if m.error and not m.error.startswith("skipped"):
            print(f"    {name} FAILED: {m.error}", flush=True)


# -- floors ----------------------------------------------------------------------------------
def stat_walk(path: Path) -> float:
    """Seconds for os.walk + lstat of every file (best of three, warm cache)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for folder, _dirs, files in os.walk(path):
            for name in files:
                os.lstat(os.path.join(folder, name))
        best = min(best, time.perf_counter() - start)
    return best


def hash_copy_sync(path: Path) -> dict[str, float]:
    """BLAKE3 of the file (mmap, every core) + shutil.copyfile + os.sync, each timed."""
    scratch = WORK / "floor-copy.tmp"
    os.sync()
    t0 = time.perf_counter()
    file_digest(path)
    t1 = time.perf_counter()
    shutil.copyfile(path, scratch)
    t2 = time.perf_counter()
    os.sync()
    t3 = time.perf_counter()
    scratch.unlink()
    return {"hash": t1 - t0, "copy": t2 - t1, "sync": t3 - t2, "total": t3 - t0}


def bare_copy(path: Path) -> float:
    """Seconds to copy every file (one thread, shutil.copyfile, no sync): a checkout's floor."""
    scratch = WORK / "floor-copy"
    rmtree(scratch)
    os.sync()
    start = time.perf_counter()
    for folder, _dirs, files in os.walk(path):
        dest = scratch / os.path.relpath(folder, path)
        dest.mkdir(parents=True)
        for name in files:
            shutil.copyfile(os.path.join(folder, name), dest / name)
    seconds = time.perf_counter() - start
    rmtree(scratch)
    return seconds


def floors_for(wl: Workload, repo: Path) -> dict[str, float]:
    if wl.files == 1:
        return hash_copy_sync(repo / wl.target)
    return {"bare stat walk": stat_walk(repo / wl.target), "bare copy": bare_copy(repo / wl.target)}


# -- local workloads -------------------------------------------------------------------------
def warm_up(tools: list[Tool], link: str, url: Callable[[Tool], str], endpoint: str = "") -> None:
    """Every command once, untimed, on a few files: .pyc files and the page cache are warm."""
    wl = Workload("warmup", 3, 64)
    for tool in tools:
        generate(wl, tool.repo)
        tool.init(link)
        tool.add_remote("origin", url(tool), endpoint)
        for args in (["add", wl.target], ["status"], ["push"]):
            tool.run(*args)
        empty_cache(tool, wl)
        tool.run("pull")
        rmtree(tool.repo.parent)


def warm_up_local(link: str) -> None:
    base = WORK / "warmup"
    rmtree(base)
    tools = make_tools(base, base_env())
    for tool in tools:
        (tool.repo.parent / "remote").mkdir()
    warm_up(tools, link, lambda tool: str(tool.repo.parent / "remote"))
    rmtree(base)


def prepare_workload(wl: Workload) -> list[Tool]:
    base = WORK / wl.name
    rmtree(base)
    tools = make_tools(base, base_env())
    for tool in tools:
        generate(wl, tool.repo)
    return tools


def run_workload(wl: Workload, opts: argparse.Namespace) -> WorkloadResult:
    print(f"\n== {wl.label}: generating and setting up ...", flush=True)
    tools = prepare_workload(wl)
    for tool in tools:
        tool.init(opts.link)
    os.sync()
    result = WorkloadResult(wl.name, wl.label, floors_for(wl, tools[0].repo))
    print("   floors: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.floors.items()), flush=True)
    for step in LOCAL_STEPS:
        tether, dvc = (measure_step(step, tool, wl, opts.timeout) for tool in tools)
        row = Row(step.name, tether, dvc)
        row.target = local_target(row, wl, result.floors, opts.link)
        result.rows.append(row)
        print_row(wl.name, row)
    if not opts.keep:
        rmtree(WORK / wl.name)
    return result


# -- S3: moto behind a counting proxy --------------------------------------------------------
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "expect"}
HOP_BY_HOP |= {"trailer", "upgrade", "content-length"}


def request_kind(method: str, path: str) -> str:
    query = urllib.parse.urlsplit(path).query
    listing = any(k in query for k in ("list-type=", "prefix=", "delimiter="))
    return "LIST" if method == "GET" and listing else method


def read_chunked(rfile: BinaryIO) -> bytes:
    parts = []
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline().strip():  # trailers, up to the blank line
                pass
            return b"".join(parts)
        parts.append(rfile.read(size))
        rfile.readline()


class CountingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to moto and counts it: what each tool really sent."""

    daemon_threads = True

    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.paths: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, kind: str, method: str, path: str) -> None:
        with self.lock:
            self.counts[kind] += 1
            self.paths.append((method, path))

    def take_paths(self) -> list[tuple[str, str]]:
        with self.lock:
            out, self.paths = self.paths, []
        return out

    def take(self) -> Counter[str]:
        with self.lock:
            out, self.counts = self.counts, Counter()
        return out


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect
    server: CountingProxy

    def setup(self) -> None:
        super().setup()
        self.upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return read_chunked(self.rfile)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def exchange(self, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            if self.upstream is None:
                port = self.server.upstream_port
                self.upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            try:
                self.upstream.request(self.command, self.path, body=body, headers=headers)
                resp = self.upstream.getresponse()
                return resp, resp.read()
            except (http.client.HTTPException, OSError):
                self.upstream.close()
                self.upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def forward(self) -> None:
        body = self.read_body()
        self.server.count(request_kind(self.command, self.path), self.command, self.path)
        resp, data = self.exchange(body)
        self.send_response_only(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        head = self.command == "HEAD"
        length = resp.getheader("Content-Length", "0") if head else str(len(data))
        self.send_header("Content-Length", length)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(
                f"moto_server exited with {proc.returncode}:\n{tail(log.read_text())}"
            )
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise CommandError(f"moto_server did not answer at {url} within 60 s (log: {log})")


@contextmanager
def moto_server() -> Iterator[int]:
    port = free_port()
    log = LOGS / "moto.log"
    with open(log, "wb") as out:
        argv = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/", proc, log)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def counting_proxy(upstream_port: int) -> Iterator[CountingProxy]:
    proxy = CountingProxy(upstream_port)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


def s3_env() -> dict[str, str]:
    # moto's documented dummy credentials; they are not secrets and are never printed
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return {**base_env(), **keys, "AWS_DEFAULT_REGION": "us-east-1"}


def create_bucket(port: int, env: dict[str, str]) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    client.create_bucket(Bucket=BUCKET)


def s3_target(row: Row, wl: Workload) -> str:
    requests = row.tether.extra.get("requests")
    if wl.files < 2_000 or requests is None or row.step == "push (unchanged)":
        return ""
    return "<100 requests " + verdict(not row.tether.error and requests < 100)


def run_s3(wl: Workload, opts: argparse.Namespace) -> WorkloadResult:
    print(f"\n== S3 (moto behind a counting proxy): {wl.label}", flush=True)
    result = WorkloadResult(wl.name, f"S3, {wl.label}")
    base = WORK / wl.name
    rmtree(base)
    env = s3_env()
    with moto_server() as port, counting_proxy(port) as proxy:
        create_bucket(port, env)
        warm_up(make_tools(base / "warmup", env), opts.link, warmup_url, proxy.url)
        tools = make_tools(base, env)
        for tool in tools:
            generate(wl, tool.repo)
            tool.init(opts.link)
            tool.run("add", wl.target)
            tool.add_remote("s3", f"s3://{BUCKET}/{tool.name}", endpoint=proxy.url)
        proxy.take()
        proxy.take_paths()
        for step in S3_STEPS:
            result.rows.append(s3_row(step, tools, wl, proxy, opts.timeout))
    if not opts.keep:
        rmtree(base)
    return result


def warmup_url(tool: Tool) -> str:
    return f"s3://{BUCKET}/warmup-{tool.name}"


def s3_row(
    step: Step, tools: list[Tool], wl: Workload, proxy: CountingProxy, timeout: float
) -> Row:
    measures = []
    for tool in tools:
        proxy.take()
        proxy.take_paths()
        measure = measure_step(step, tool, wl, timeout)
        counts = proxy.take()
        measure.extra["requests"] = sum(counts.values())
        measure.extra["by_kind"] = dict(sorted(counts.items()))
        log = LOGS / f"s3-{tool.name}-{slug(step.name)}.requests"
        log.write_text("".join(f"{method} {path}\n" for method, path in proxy.take_paths()))
        measures.append(measure)
    row = Row(step.name, *measures)
    row.target = s3_target(row, wl)
    print_row("s3", row, f" | requests tether {requests_of(row.tether)} dvc {requests_of(row.dvc)}")
    return row


def requests_of(m: Measure) -> str:
    kinds = m.extra.get("by_kind", {})
    detail = ", ".join(f"{k} {v}" for k, v in kinds.items())
    return f"{m.extra.get('requests', '-')}" + (f" ({detail})" if detail else "")


# -- report ----------------------------------------------------------------------------------
def print_tables(results: list[WorkloadResult], meta: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    console.print()
    keys = ("link", "tether_sync", "dvc_sync", "fairness", "page_cache")
    for key in (*keys, "loadavg_start", "loadavg_end"):
        console.print(f"{key}: {meta[key]}", highlight=False)
    for res in results:
        s3 = res.name == "s3"
        table = Table(title=res.label, title_justify="left")
        cols = ["step", "tether s", "dvc s", "dvc/tether", "tether peak MiB", "dvc peak MiB"]
        cols += ["tether req", "dvc req", "req dvc/tether"] if s3 else []
        for col in [*cols, "target"]:
            table.add_column(col, justify="left" if col in ("step", "target") else "right")
        for row in res.rows:
            table.add_row(*table_cells(row, s3))
        console.print(table)
        if res.floors:
            floors = ", ".join(f"{k} {v:.2f} s" for k, v in res.floors.items())
            console.print(f"  floor: {floors}", highlight=False)
        print_failures(console, res)


def table_cells(row: Row, s3: bool) -> list[str]:
    t, d = row.tether, row.dvc
    cells = [row.step, cell(t), cell(d), show(row.ratio, ".1f") + "x"]
    cells += [show(t.peak_mib, ".0f"), show(d.peak_mib, ".0f")]
    if s3:
        tr, dr = t.extra.get("requests"), d.extra.get("requests")
        ratio = dr / tr if tr and dr is not None else None
        cells += [str(tr), str(dr), show(ratio, ".1f") + "x"]
    return [*cells, row.target]


def print_failures(console: Any, res: WorkloadResult) -> None:
    for row in res.rows:
        for name, m in (("tether", row.tether), ("dvc", row.dvc)):
            if m.error and not m.error.startswith("skipped"):
                console.print(f"  {name} {row.step} FAILED: {m.error}", highlight=False)


def describe(opts: argparse.Namespace, dvc_version: str) -> dict[str, Any]:
    scanned, hits = dvc_sync_calls()
    checked = f"checked: {scanned} files of dvc, dvc_data, dvc_objects " + (
        f"call sync in {hits}" if hits else "have no fsync/fdatasync/syncfs/os.sync call"
    )
    tether_link = "hardlink" if opts.link == "hardlink" else "reflink,copy (copies on this fs)"
    commit = run(["git", "-C", PROJECT, "rev-parse", "--short", "HEAD"]).strip()
    dirty = run(["git", "-C", PROJECT, "status", "--porcelain", "src"]).strip()
    if dirty:  # keep the uncommitted changes the run measured
        diff = run(["git", "-C", PROJECT, "diff", "HEAD", "--", "src"])
        (WORK / "tether-src.diff").write_text(diff)
    version = run([TETHER_EXE, "--version"]).strip()
    return {
        "quick": opts.quick,
        "link": f"tether cache.link={tether_link}; dvc cache.type={opts.link}",
        "tether_sync": TETHER_SYNC,
        "dvc_sync": f"{DVC_SYNC}; {checked}",
        "fairness": "os.sync() before every timed command; every command warmed up once "
        "(.pyc, page cache); one run per cell; Tether runs from a copy of src/ taken at start",
        "tether": f"{version} (commit {commit}"
        + (", with uncommitted src changes: .work/tether-src.diff)" if dirty else ")"),
        "dvc": dvc_version,
        "page_cache": page_cache_note(),
        "python": platform.python_version(),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores, fs {fs_type(WORK)}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def page_cache_note() -> str:
    """Whether the kernel pages out idle memory (DAMON): then 'warm' data may be read from disk."""
    schemes = []
    try:
        for state in Path("/sys/kernel/mm/damon/admin/kdamonds").glob("*/state"):
            if state.read_text().strip() != "on":
                continue
            for ctx in state.parent.glob("contexts/[0-9]*"):
                aggr_us = int((ctx / "monitoring_attrs/intervals/aggr_us").read_text())
                for scheme in ctx.glob("schemes/[0-9]*"):
                    age = int((scheme / "access_pattern/age/min").read_text())
                    action = (scheme / "action").read_text().strip()
                    schemes.append(f"{action} after {age * aggr_us / 1e6:g} s idle")
    except (OSError, ValueError):
        return "unknown (could not read DAMON settings)"
    if not schemes:
        return "no DAMON reclaim: page cache stays warm"
    return (
        f"DAMON is on ({'; '.join(schemes)}): data not touched for that long may be re-read "
        "from disk, by either tool"
    )


def fs_type(path: Path) -> str:
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mount, fstype, *_ = line.split()
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    return kind


def write_json(meta: dict[str, Any], results: list[WorkloadResult]) -> Path:
    out = WORK / "results.json"
    doc = {"meta": meta, "workloads": [asdict(r) for r in results]}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~2 minute smoke run")
    parser.add_argument(
        "--workloads",
        default=",".join(FULL),
        help=f"comma list of {', '.join(FULL)} (default: all)",
    )
    parser.add_argument("--link", choices=("copy", "hardlink"), default="copy")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per command")
    parser.add_argument("--keep", action="store_true", help="keep the repositories afterwards")
    opts = parser.parse_args(argv)
    opts.names = chosen_workloads(parser, opts, FULL)
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    meta = describe(opts, ensure_dvc())
    snapshot_tether(TETHER_SRC, sys.executable, Tether(WORK, base_env()).env)
    for key, value in meta.items():
        print(f"{key}: {value}", flush=True)
    sizes = QUICK if opts.quick else FULL
    results: list[WorkloadResult] = []
    started = time.perf_counter()
    meta["loadavg_start"] = os.getloadavg()
    if any(name != "s3" for name in opts.names):
        print("\nwarming up (every command once on a scratch repo, untimed) ...", flush=True)
        warm_up_local(opts.link)
    try:
        for name in opts.names:
            wl = sizes[name]
            results.append(run_s3(wl, opts) if name == "s3" else run_workload(wl, opts))
    finally:
        meta["seconds"] = round(time.perf_counter() - started, 1)
        meta["loadavg_end"] = os.getloadavg()
        print_tables(results, meta)
        print(f"\nresults: {write_json(meta, results)} ({meta['seconds']} s)", flush=True)
    failed = any(m.error for r in results for row in r.rows for m in (row.tether, row.dvc))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
