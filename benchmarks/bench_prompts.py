"""Tether against promptfoo on the same prompt suite and server, side by side: cold and warm evals.

``.venv/bin/python benchmarks/bench_prompts.py`` starts the fake OpenAI-compatible server
(``python -m tether.prompts.fakeserver --latency 0.05``) as a process of its own on 127.0.0.1,
writes one 1,000-case CSV suite, and times ``tether prompt eval -j 32`` and ``promptfoo eval -j
32`` on it (cold, cold with the cache on, warm), each run checked for its case count, pass count
and cache use, against a bare threaded HTTP client on the same requests. Then it times
``tether.prompts.load`` from its cache in-process (or says it is not built yet). ``--quick``: one
round instead of three; ``--cases N``: another suite size. promptfoo (and a Node.js it accepts)
come from the npm registry into ``benchmarks/.work/``. Numbers go to
``benchmarks/.work/prompts-results.json``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import platform
import queue
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _shared import CommandError, run, snapshot_tether, write_results
from bench_data import Measure, fs_type, page_cache_note, run_timed
from promptfoo_setup import PROMPTFOO_EXE, ensure_node, ensure_promptfoo, promptfoo_env
from promptfoo_setup import clean_env as setup_clean_env

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
WORK = HERE / ".work"
BASE = WORK / "prompts"  # one folder per round: the Tether repository and the promptfoo project
LOGS = WORK / "prompts-logs"  # one log per command, the server's log, promptfoo's JSON outputs
TETHER_PY = PROJECT / ".venv" / "bin" / "python"
TETHER_EXE = PROJECT / ".venv" / "bin" / "tether"
TETHER_SRC = WORK / "prompts-tether-src"  # a copy of src/: one run measures one version

DEBUG_LOG_NOTE = (
    "promptfoo's per-run debug log file is off (PROMPTFOO_DISABLE_DEBUG_LOG=1): with it, a warm "
    "run here died at exit with winston's 'write after end'; off, promptfoo also writes less"
)
LATENCY_S = 0.05
RATE_TARGET = 500.0  # cases/s, cold, at -j 32
LOAD_TARGET_US = 50.0
LOAD_CALLS = 10_000
STEPS = ("cold", "cold, cache on", "warm")
TOOLS = ("tether", "promptfoo")

PROMPT, VERSION = "sentiment", "v1.0.0"
TEMPLATE = "Review: {{ review }}\nLabel:"  # the same text for both tools
PROMPT_YAML = """\
description: Classify a movie review
variables:
  review: {type: string}
model: fake-model
output: {format: label, labels: [positive, negative]}
"""
SUITE_YAML = """\
description: 'Movie-review sentiment: rows of bench.csv'
cases:
  - file: bench.csv
assert:
  - label-match: true
"""

# The reviews: an opener, a phrase, an ending and the row number (so no two prompts are the same
# and no cache can answer one case with another's answer). The fake server answers "positive"
# when the text says "good" or "great": a quarter of the phrases are chosen to disagree with the
# expected label, so the pass rate is about 75% and a run that scores nothing is caught.
OPENERS = (
    "The film", "This movie", "The sequel", "Her new picture", "The documentary", "This thriller",
    "The remake", "The animated feature", "His debut", "The director's cut", "The miniseries",
    "This comedy",
)  # fmt: skip
PHRASES = {  # (expected label, whether the server's keyword rule agrees) -> phrases
    ("positive", True): (
        "is a great ride",
        "has great performances all round",
        "is good fun from the first scene",
        "was genuinely good",
        "makes for a great evening",
        "holds up as a good old-fashioned yarn",
    ),
    ("positive", False): (
        "is a triumph",
        "left me delighted",
        "is wonderful from start to finish",
        "deserves every award it gets",
        "is the best thing I saw this year",
    ),
    ("negative", True): (
        "is a dull slog",
        "wastes a fine cast",
        "drags on forever",
        "is bad in every way",
        "feels twice as long as it is",
        "never finds its footing",
    ),
    ("negative", False): (
        "is not good at all",
        "had great potential and squanders it",
        "is no good",
        "is a great disappointment",
        "has one good scene and nothing else",
    ),
}
ENDINGS = (
    "", " I laughed twice.", " The score is forgettable.", " Bring snacks.", " Skip the trailer.",
    " The ending is abrupt.", " My friends disagreed.",
)  # fmt: skip

# Run by Tether's interpreter in a repository: `tether.prompts.load` timed from its cache,
# LOAD_CALLS calls each measured with perf_counter_ns; one JSON line on stdout.
LOAD_PROBE = r"""
import inspect, json, statistics, sys, time
calls, name, version, label = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
try:
    import tether.prompts as prompts
    load, where = getattr(prompts, "load", None), "tether.prompts.load"
    if load is None:
        from tether.prompts.runtime import load
        where = "tether.prompts.runtime.load"
except ImportError as exc:
    print(json.dumps({"built": False, "why": f"{type(exc).__name__}: {exc}"}))
    raise SystemExit(0)
params = inspect.signature(load).parameters
tries = []
if "label" in params:
    tries.append(((name,), {"label": label}))
if "version" in params:
    tries.append(((name,), {"version": version}))
tries += [((f"{name}@{version}",), {}), ((name,), {})]
failures = []
for args, kwargs in tries:
    try:
        start = time.perf_counter_ns()
        first = load(*args, **kwargs)
        first_ns = time.perf_counter_ns() - start
        break
    except Exception as exc:
        failures.append(f"load{args!r} {kwargs!r}: {type(exc).__name__}: {exc}")
else:
    print(json.dumps({"built": True, "where": where, "errors": failures}))
    raise SystemExit(0)
clock = time.perf_counter_ns
load(*args, **kwargs)  # the cache is filled now, whatever the first call did
samples = []
for _ in range(calls):
    t0 = clock()
    load(*args, **kwargs)
    samples.append(clock() - t0)
empty = []
for _ in range(calls):
    t0 = clock()
    empty.append(clock() - t0)
samples.sort()
call = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
print(json.dumps({
    "built": True,
    "where": where,
    "call": f"load({call})",
    "returned": f"{type(first).__name__} {getattr(first, 'ref', '')}".strip(),
    "first_us": first_ns / 1000,
    "median_us": statistics.median(samples) / 1000,
    "p99_us": samples[int(len(samples) * 0.99) - 1] / 1000,
    "mean_us": sum(samples) / len(samples) / 1000,
    "clock_us": statistics.median(empty) / 1000,
    "calls": calls,
    "skipped": failures,
}))
"""


# -- the suite --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    id: str
    review: str
    expected: str


def rendered(review: str) -> str:
    """The prompt text both tools send (the template has one variable)."""
    return TEMPLATE.replace("{{ review }}", review)


def server_answer(text: str) -> str:
    """The fake server's rule (tether/prompts/fakeserver.py ``sentiment_answer``), restated so
    that the expected pass count does not come from the code under test; the bare client checks
    that the running server agrees."""
    lowered = text.lower()
    return "positive" if "good" in lowered or "great" in lowered else "negative"


def make_rows(n: int, seed: int = 20240617) -> list[Row]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        expected = rng.choice(("positive", "negative"))
        agrees = rng.random() < 0.75
        phrase = rng.choice(PHRASES[expected, agrees])
        review = f"{rng.choice(OPENERS)} {phrase}.{rng.choice(ENDINGS)} (#{i + 1})"
        if (server_answer(rendered(review)) == expected) != agrees:
            raise AssertionError(f"phrase {phrase!r} is filed under the wrong rule")
        rows.append(Row(f"review-{i + 1:04d}", review, expected))
    return rows


def expected_passes(rows: list[Row]) -> int:
    return sum(server_answer(rendered(r.review)) == r.expected for r in rows)


def write_csv(path: Path, rows: list[Row]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["id", "review", "expected"])
        out.writerows([r.id, r.review, r.expected] for r in rows)


# -- environments -----------------------------------------------------------------------------
def clean_env() -> dict[str, str]:
    env = setup_clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # else no .pyc is kept under the prefix
    for who in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{who}_NAME"], env[f"GIT_{who}_EMAIL"] = "bench", "bench@example.com"
    return env


def tether_env() -> dict[str, str]:
    """The snapshot first on sys.path; .pyc files under .work (src/ is not written to)."""
    return {
        **clean_env(),
        "PYTHONPATH": str(TETHER_SRC),
        "PYTHONPYCACHEPREFIX": str(WORK / "pycache"),
    }


# -- the server and a bare client -------------------------------------------------------------
@contextmanager
def fake_server(latency_s: float) -> Iterator[str]:
    """The fake server as a process of its own on 127.0.0.1 (an ephemeral port): its base URL."""
    log = (LOGS / "fakeserver.log").open("w")
    argv = [TETHER_PY, "-m", "tether.prompts.fakeserver", "--latency", str(latency_s)]
    proc = subprocess.Popen(
        [str(a) for a in argv],
        env=tether_env(),
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise CommandError(f"the fake server did not start (log: {LOGS / 'fakeserver.log'})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def bare_client(url: str, rows: list[Row], jobs: int) -> tuple[float, int]:
    """The same requests from ``jobs`` threads, one keep-alive http.client connection each, no
    cache, no scoring beyond comparing the answer: (seconds, cases whose answer is expected)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/") + "/chat/completions"
    todo: queue.SimpleQueue[Row] = queue.SimpleQueue()
    for row in rows:
        todo.put(row)
    passed, lock = [0, 0], threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        while True:
            try:
                row = todo.get_nowait()
            except queue.Empty:
                break
            message = {"role": "user", "content": rendered(row.review)}
            body = json.dumps({"model": "fake-model", "messages": [message]}).encode()
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            answer = json.loads(conn.getresponse().read())["choices"][0]["message"]["content"]
            with lock:
                passed[0] += answer == row.expected
                passed[1] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(min(jobs, len(rows)))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if passed[1] != len(rows):
        raise CommandError(f"the bare client got {passed[1]} answers of {len(rows)}")
    return seconds, passed[0]


# -- the projects -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Project:
    tether: Path  # the git repository
    promptfoo: Path  # promptfooconfig.yaml, its outputs, and home/ (config dir and cache)

    @property
    def csv(self) -> Path:
        return self.tether / "evals" / "bench.csv"


def make_tether_repo(repo: Path, rows: list[Row], url: str) -> None:
    """``git init``, ``tether init``, the prompt, the suite and its CSV, the provider, one commit,
    and the version registered (as a user would before evaluating and labelling it)."""
    folder = repo / "prompts" / PROMPT / VERSION
    folder.mkdir(parents=True)
    (repo / "evals").mkdir()
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    for key, value in (("user.name", "bench"), ("user.email", "bench@example.com")):
        run(["git", "config", key, value], cwd=repo)
    run([TETHER_EXE, "init"], cwd=repo, env=tether_env())
    (folder / "prompt.yaml").write_text(PROMPT_YAML)
    (folder / "template.jinja2").write_text(TEMPLATE)
    (repo / "evals" / "bench.yaml").write_text(SUITE_YAML)
    write_csv(repo / "evals" / "bench.csv", rows)
    with (repo / "tether.toml").open("a") as f:
        f.write(
            f'\n[prompts.providers.local]\ntype = "openai"\nbase_url = "{url}"\n'
            'model = "fake-model"\n'
        )
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "prompt and suite"], cwd=repo)
    run([TETHER_EXE, "prompt", "register", f"{PROMPT}@{VERSION}"], cwd=repo, env=tether_env())


def make_promptfoo_project(folder: Path, csv_path: Path, url: str, jobs: int) -> None:
    """The same prompt text, model and server; the tests are the rows of the same CSV file
    (``id`` and ``expected`` become unused variables); one equals assertion per case."""
    folder.mkdir(parents=True)
    config = {
        "description": "Movie-review sentiment: rows of bench.csv",
        "prompts": [TEMPLATE],
        "providers": [{"id": "openai:chat:fake-model", "config": {"apiBaseUrl": url}}],
        "tests": f"file://{csv_path}",
        "defaultTest": {"assert": [{"type": "equals", "value": "{{ expected }}"}]},
        "evaluateOptions": {"maxConcurrency": jobs},
        "sharing": False,
    }
    (folder / "promptfooconfig.yaml").write_text(json.dumps(config, indent=2) + "\n")  # YAML 1.2


def make_project(base: Path, rows: list[Row], url: str, jobs: int) -> Project:
    shutil.rmtree(base, ignore_errors=True)
    project = Project(base / "tether" / "repo", base / "promptfoo")
    make_tether_repo(project.tether, rows, url)
    make_promptfoo_project(project.promptfoo, project.csv, url, jobs)
    return project


# -- one timed command ------------------------------------------------------------------------
def command(tool: str, step: str, project: Project, out: Path, opts: argparse.Namespace) -> Any:
    """(argv, cwd, env) of one eval, after preparing its cache for ``step``."""
    jobs = str(opts.jobs)
    if tool == "tether":
        if step != "warm":  # cold: an empty response cache (Tether has no switch to turn it off)
            shutil.rmtree(project.tether / ".tether" / "cache" / "responses", ignore_errors=True)
        argv = [str(TETHER_EXE), "prompt", "eval", f"{PROMPT}@{VERSION}"]
        argv += ["--suite", "evals/bench.yaml", "-p", "local", "-j", jobs]
        return argv, project.tether, tether_env()
    home = project.promptfoo / "home"
    if step == "cold, cache on":
        shutil.rmtree(home / "cache", ignore_errors=True)
    argv = [str(PROMPTFOO_EXE), "eval", "-c", "promptfooconfig.yaml", "-j", jobs, "--no-share"]
    argv += ["-o", str(out)] + (["--no-cache"] if step == "cold" else [])
    return argv, project.promptfoo, promptfoo_env(home, opts.node_bin)


def check_tether(log: str, step: str, n: int, passes: int) -> str:
    """What is wrong with a Tether run's output ('' when nothing is)."""
    counts = re.search(r"(\d+) cases, (\d+) attempts, (\d+) errors", log)
    rate = re.search(r"pass rate ([\d.]+)%", log)
    cached = re.search(r"(\d+) of (\d+) answers from the cache", log)
    if not (counts and rate and cached):
        return "no summary (cases, pass rate, cache) in its output"
    want_cached = n if step == "warm" else 0
    problems = []
    if int(counts[1]) != n or int(counts[3]) != 0:
        problems.append(f"{counts[1]} cases and {counts[3]} errors, expected {n} and 0")
    if rate[1] != f"{100 * passes / n:.1f}":
        problems.append(f"pass rate {rate[1]}%, expected {100 * passes / n:.1f}%")
    if int(cached[1]) != want_cached:
        problems.append(f"{cached[1]} answers from the cache, expected {want_cached}")
    if "recorded as run" not in log:
        problems.append("no run recorded")
    return "; ".join(problems)


def check_promptfoo(out: Path, step: str, n: int, passes: int) -> tuple[str, float | None]:
    """What is wrong with a promptfoo run's JSON output, and its own eval duration (s)."""
    try:
        doc = json.loads(out.read_text())["results"]
        stats, results = doc["stats"], doc["results"]
    except (OSError, ValueError, KeyError) as exc:
        return f"no readable results in {out} ({exc})", None
    cached = sum(bool((r.get("response") or {}).get("cached")) for r in results)
    want_cached = n if step == "warm" else 0
    problems = []
    if len(results) != n or stats["errors"] != 0:
        problems.append(f"{len(results)} results and {stats['errors']} errors, expected {n} and 0")
    if (stats["successes"], stats["failures"]) != (passes, n - passes):
        problems.append(
            f"{stats['successes']} passed and {stats['failures']} failed, "
            f"expected {passes} and {n - passes}"
        )
    if cached != want_cached:
        problems.append(f"{cached} answers from the cache, expected {want_cached}")
    duration = stats.get("durationMs")
    return "; ".join(problems), None if duration is None else duration / 1000


# -- one round: fresh projects, every step with each tool in turn ----------------------------
@dataclass
class Round:
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # step -> tool -> s
    peak_mib: dict[str, dict[str, float]] = field(default_factory=dict)
    promptfoo_own_s: dict[str, float] = field(default_factory=dict)  # its durationMs, per step
    bare_s: float = 0.0
    errors: list[str] = field(default_factory=list)


def measure(
    tool: str, step: str, project: Project, r: int, opts: argparse.Namespace
) -> tuple[Measure, float | None]:
    slug = f"r{r}-{tool}-{step.replace(', ', '-').replace(' ', '-')}"
    log, out = LOGS / f"{slug}.log", LOGS / f"{slug}.json"
    out.unlink(missing_ok=True)
    argv, cwd, env = command(tool, step, project, out, opts)
    os.sync()  # neither tool pays for writes the other (or the setup) left behind
    m = run_timed(argv, cwd, env, log, opts.timeout)
    own = None
    if tool == "tether":
        m.error = check_tether(log.read_text(errors="replace"), step, opts.cases, opts.passes)
    else:
        m.error, own = check_promptfoo(out, step, opts.cases, opts.passes)
    if m.error:
        m.error += f" (log: {log})"
    return m, own


def run_round(r: int, opts: argparse.Namespace, url: str) -> Round:
    base = BASE / f"round{r}"
    project = make_project(base, opts.rows, url, opts.jobs)
    res = Round()
    res.bare_s, bare_passes = bare_client(url, opts.rows, opts.jobs)
    if bare_passes != opts.passes:
        res.errors.append(
            f"round {r}: the server's answers give {bare_passes} passes, the rule "
            f"{opts.passes}: the fake server's rule changed; update server_answer()"
        )
    failed: set[str] = set()
    for step in STEPS:
        res.seconds[step], res.peak_mib[step] = {}, {}
        for tool in TOOLS:
            if tool in failed:
                continue
            try:
                m, own = measure(tool, step, project, r, opts)
            except CommandError as exc:
                m, own = Measure(error=str(exc)), None
            if m.error:
                res.errors.append(f"round {r} {step} {tool}: {m.error}")
                failed.add(tool)
                continue
            assert m.seconds is not None and m.peak_mib is not None
            res.seconds[step][tool], res.peak_mib[step][tool] = m.seconds, m.peak_mib
            if own is not None:
                res.promptfoo_own_s[step] = own
        print_round_line(r, step, res, opts.cases)
    if not opts.keep:
        shutil.rmtree(base)
    return res


def print_round_line(r: int, step: str, res: Round, n: int) -> None:
    cells = [f"{t} {s:.2f} s ({n / s:.0f}/s)" for t, s in res.seconds[step].items()]
    bare = f" | bare client {res.bare_s:.2f} s" if step == "cold" else ""
    print(
        f"   round {r} {step:<14} "
        + " | ".join(cells)
        + bare
        + f" | load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def warm_up(opts: argparse.Namespace, url: str) -> None:
    """Every step once, untimed, on 50 cases: .pyc files, node's file cache, the page cache."""
    rows = opts.rows[:50]
    small = argparse.Namespace(**vars(opts))
    small.rows, small.cases, small.passes, small.keep = (
        rows,
        len(rows),
        expected_passes(rows),
        False,
    )
    res = run_round(-1, small, url)
    if res.errors:
        raise CommandError("warm-up failed:\n" + "\n".join(res.errors))


# -- tether.prompts.load from its cache -------------------------------------------------------
def measure_load(url: str, opts: argparse.Namespace) -> dict[str, Any]:
    """On a fresh repository whose version is registered and labelled ``production`` (when
    ``tether prompt promote`` exists): LOAD_CALLS calls of a cache hit, in one process."""
    base = BASE / "load"
    project = make_project(base, opts.rows[:10], url, opts.jobs)
    promote = [TETHER_EXE, "prompt", "promote", f"{PROMPT}@{VERSION}", "--label", "production"]
    try:
        run(promote, cwd=project.tether, env=tether_env())
        labelled = "production"
    except CommandError as exc:
        labelled = f"no label ({exc.args[0].splitlines()[-1][:120]})"
    out = run(
        [TETHER_PY, "-c", LOAD_PROBE, LOAD_CALLS, PROMPT, VERSION, "production"],
        cwd=project.tether,
        env=tether_env(),
    )
    if not opts.keep:
        shutil.rmtree(base)
    return {**json.loads(out.strip().splitlines()[-1]), "labelled": labelled}


# -- report -----------------------------------------------------------------------------------
def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(rounds: list[Round], n: int) -> list[dict[str, Any]]:
    rows = []
    for step in STEPS:
        row: dict[str, Any] = {"step": step, "cases": n}
        for tool in TOOLS:
            s = median([r.seconds[step][tool] for r in rounds if tool in r.seconds.get(step, {})])
            mib = [r.peak_mib[step][tool] for r in rounds if tool in r.peak_mib.get(step, {})]
            row[f"{tool}_s"], row[f"{tool}_peak_mib"] = s, median(mib)
            row[f"{tool}_rate"] = n / s if s else None
        own = [r.promptfoo_own_s[step] for r in rounds if step in r.promptfoo_own_s]
        row["promptfoo_own_s"] = median(own)
        t, p = row["tether_s"], row["promptfoo_s"]
        row["ratio"] = p / t if t and p else None
        row["bare_s"] = median([r.bare_s for r in rounds]) if step != "warm" else None
        rows.append(row)
    return rows


def targets(row: dict[str, Any]) -> str:
    parts = []
    if row["step"] != "warm":
        ok = row["tether_rate"] is not None and row["tether_rate"] >= RATE_TARGET
        parts.append(f">={RATE_TARGET:g} cases/s " + ("ok" if ok else "MISS"))
    ok = row["ratio"] is not None and row["ratio"] > 1
    parts.append("faster than promptfoo " + ("ok" if ok else "MISS"))
    return "; ".join(parts)


def fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


def print_table(rows: list[dict[str, Any]], meta: dict[str, Any], opts: Any) -> None:
    print()
    for key, value in meta.items():
        print(f"{key}: {value}")
    head = [
        "step",
        "cases",
        "tether s",
        "tether cases/s",
        "promptfoo s",
        "promptfoo cases/s",
        "tether/promptfoo",
        "bare client s",
        "target",
    ]
    table = [head] + [
        [
            r["step"],
            str(r["cases"]),
            fmt(r["tether_s"]),
            fmt(r["tether_rate"], ".0f"),
            fmt(r["promptfoo_s"]),
            fmt(r["promptfoo_rate"], ".0f"),
            fmt(r["ratio"], ".2f", "x"),
            fmt(r["bare_s"]),
            targets(r),
        ]
        for r in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    rule = "  ".join("-" * w for w in widths)
    print(
        f"\nseconds: wall time of the whole command (start-up, suite, requests, scoring, "
        f"recording), median of {meta['rounds']} round(s); cases/s = cases / seconds; "
        "tether/promptfoo = promptfoo seconds / tether seconds (above 1: Tether is faster)"
    )
    print(rule)
    for i, r in enumerate(table):
        print(
            "  ".join(
                c.ljust(w) if j in (0, len(head) - 1) else c.rjust(w)
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if i == 0:
            print(rule)
    print(rule)
    floor = opts.cases / opts.jobs * LATENCY_S
    print(
        f"floor: {opts.cases} cases / {opts.jobs} in flight x {LATENCY_S * 1000:g} ms = "
        f"{floor:.2f} s ({opts.cases / floor:.0f} cases/s); the bare client (threads, one "
        "keep-alive connection each, no cache or scoring) shows what the server allows here"
    )
    own = ", ".join(f"{r['step']} {fmt(r['promptfoo_own_s'])} s" for r in rows)
    print(f"promptfoo's own evaluation time (its durationMs: start-up and output excluded): {own}")


def print_load(load: dict[str, Any]) -> None:
    print()
    if not load.get("built"):
        print(f"tether.prompts.load from cache: not built yet ({load.get('why', '')})")
        return
    if "median_us" not in load:
        print(f"tether.prompts.load from cache: every call failed: {'; '.join(load['errors'])}")
        return
    ok = load["median_us"] < LOAD_TARGET_US
    print(
        f"tether.prompts.load from cache ({load['where']}, {load['call']} -> {load['returned']}; "
        f"version {load['labelled']}): median {load['median_us']:.1f} µs per call, p99 "
        f"{load['p99_us']:.1f} µs, mean {load['mean_us']:.1f} µs over {load['calls']:,} calls "
        f"(first call {load['first_us']:.0f} µs; an empty timed call costs "
        f"{load['clock_us']:.2f} µs); target < {LOAD_TARGET_US:g} µs " + ("ok" if ok else "MISS")
    )
    for skipped in load.get("skipped") or []:
        print(f"  tried first and failed: {skipped}")


def describe(opts: argparse.Namespace, promptfoo: str, node: str) -> dict[str, Any]:
    commit = run(["git", "-C", PROJECT, "rev-parse", "--short", "HEAD"]).strip()
    dirty = run(["git", "-C", PROJECT, "status", "--porcelain", "src"]).strip()
    (WORK / "prompts-tether-src.diff").unlink(missing_ok=True)
    if dirty:  # keep the uncommitted changes the run measured
        diff = run(["git", "-C", PROJECT, "diff", "HEAD", "--", "src"])
        (WORK / "prompts-tether-src.diff").write_text(diff)
    version = run([TETHER_EXE, "--version"], env=tether_env()).strip()
    n, passes = opts.cases, opts.passes
    return {
        "quick": opts.quick,
        "rounds": opts.rounds,
        "suite": f"{n} cases from one CSV (id, review, expected), {passes} expected to pass "
        f"({100 * passes / n:.1f}%: the server's keyword rule disagrees with the rest); prompt "
        f"{TEMPLATE!r}, one user message, model fake-model",
        "server": f"python -m tether.prompts.fakeserver --latency {LATENCY_S:g} (a process of "
        "its own on 127.0.0.1, ThreadingHTTPServer, keep-alive)",
        "tether": f"{version} (commit {commit}"
        + (", with uncommitted src changes: .work/prompts-tether-src.diff)" if dirty else ")")
        + f": tether prompt eval {PROMPT}@{VERSION} --suite evals/bench.yaml -p local "
        f"-j {opts.jobs}",
        "promptfoo": f"promptfoo {promptfoo} on {node}: promptfoo eval -c promptfooconfig.yaml "
        f"-j {opts.jobs} --no-share -o FILE.json [--no-cache on the cold step], run as "
        "node_modules/.bin/promptfoo (what `npx promptfoo` runs, without npm's own start-up)",
        "steps": "cold: Tether with .tether/cache/responses deleted, promptfoo with --no-cache; "
        "cold, cache on: both with their response cache emptied and written as answers arrive "
        "(for Tether the same as cold: it has no switch to turn its cache off); warm: again, "
        "every answer in the cache",
        "fairness": f"same server, same concurrency ({opts.jobs}), same CSV file, same prompt "
        "text; fresh Tether repository and promptfoo config/cache folder per round; "
        "os.sync() before every timed command; one untimed warm-up round; every run checked "
        "for its case count, pass count (equal to the server rule's) and cache use; Tether runs "
        "from a copy of src/; telemetry, update checks and sharing off; " + DEBUG_LOG_NOTE,
        "what each records": "tether: the eval as a run (params, pass rate with its Wilson "
        "interval, latency, tokens, cost and errors as metrics, results.jsonl as an artifact, "
        "an index row, a sealed record), answers cached one file each; promptfoo: the eval in "
        "its SQLite database (every result), results.json (-o), answers in its disk cache "
        "(cache steps only)",
        "page_cache": page_cache_note(),
        "python": platform.python_version(),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores, fs {fs_type(WORK)} "
        "(the server shares the cores with the tool measured)",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# -- main -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round instead of three")
    parser.add_argument("--cases", type=int, default=1000, help="cases in the suite (1000)")
    parser.add_argument("--jobs", type=int, default=32, help="requests in flight (32)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per command")
    parser.add_argument("--keep", action="store_true", help="keep the projects afterwards")
    opts = parser.parse_args(argv)
    if opts.cases < 1 or opts.jobs < 1:
        parser.error("--cases and --jobs must be at least 1")
    opts.rounds = 1 if opts.quick else 3
    opts.rows = make_rows(opts.cases)
    opts.passes = expected_passes(opts.rows)
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    opts.node_bin, node = ensure_node()
    meta = describe(opts, ensure_promptfoo(opts.node_bin), node)
    snapshot_tether(TETHER_SRC, TETHER_PY, tether_env())
    for key, value in meta.items():
        print(f"{key}: {value}", flush=True)
    started = time.perf_counter()
    meta["loadavg_start"] = os.getloadavg()
    rounds = []
    with fake_server(LATENCY_S) as url:
        print(f"\nserver at {url}; warming up (every step once on 50 cases, untimed) ...")
        warm_up(opts, url)
        for r in range(opts.rounds):
            rounds.append(run_round(r, opts, url))
        load = measure_load(url, opts)
    rows = summarize(rounds, opts.cases)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["loadavg_end"] = os.getloadavg()
    print_table(rows, meta, opts)
    print_load(load)
    errors = [e for r in rounds for e in r.errors]
    doc = {"meta": meta, "rows": rows, "load": load}
    return write_results(WORK / "prompts-results.json", doc, errors, meta["seconds"])


if __name__ == "__main__":
    sys.exit(main())
