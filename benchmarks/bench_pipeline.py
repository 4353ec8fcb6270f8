"""Tether against DVC on the same pipeline, side by side: cold, no-op and one-change ``repro``.

``.venv/bin/python benchmarks/bench_pipeline.py`` builds one pipeline of 20 cheap shell stages (4
independent chains of 5) as ``pipeline.yaml`` for Tether and ``dvc.yaml`` for DVC, each in a
fresh git repository under ``benchmarks/.work/pipeline/``, and times ``repro`` with both tools
(and Tether with ``-j 2``), against a bare loop over the same commands. Then it splits Tether's
no-op into start-up, imports and work, names who imports each installed package, and profiles
the cold, no-op and one-change runs. ``--quick``: one round; ``--stages N``: another size.
DVC comes from ``benchmarks/.venv-dvc`` (installed by bench_data.py on first use). Numbers go to
``benchmarks/.work/pipeline-results.json``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _shared import CommandError, run, snapshot_tether, write_results
from bench_data import DVC_EXE, Measure, ensure_dvc, fs_type, page_cache_note, run_timed

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
WORK = HERE / ".work"
BASE = WORK / "pipeline"  # the repositories
LOGS = WORK / "pipeline-logs"  # one log per command, importtime outputs, .prof files
TETHER_PY = PROJECT / ".venv" / "bin" / "python"
TETHER_EXE = PROJECT / ".venv" / "bin" / "tether"
TETHER_SRC = WORK / "pipeline-tether-src"  # a copy of src/: one run measures one version
CHAINS = 4
LINES = 300  # lines per input file: about 3 KiB
STEPS = ("cold", "no-op", "one change")
RATIO_TARGET = 10.0  # dvc/tether, for no-op and one change
OVERHEAD_TARGET_MS = 20.0  # Tether's own time per stage run

# step.sh KEY IN OUT: OUT is IN with its second column times params.yaml's KEY.factor (one sed
# and one awk: a few ms, so Tether's own overhead per stage is measurable)
STEP_SH = """\
factor=$(sed -n "/^$1:/{n;s/^ *factor: *//p;}" params.yaml)
awk -v f="$factor" '{ print $1, $2 * f % 1000003 }' "$2" > "$3"
"""

# Run by Tether's interpreter in a repository: `tether ARGS...` with a meta-path hook that
# records, for each package outside the standard library, the stack at its first import.
PROBE = """
import json, sys, traceback
out, args = sys.argv[1], sys.argv[2:]
found = {}
class Watch:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in found and top not in sys.stdlib_module_names:
            stack = traceback.extract_stack()[:-1]
            found[top] = [(f.filename, f.lineno, f.name) for f in stack
                          if not f.filename.startswith("<")]
sys.meta_path.insert(0, Watch())
sys.argv = ["tether", *args]
from tether.cli.main import main
try:
    main()
except SystemExit:
    pass
def installed(top):  # a package from site-packages (not tether, not the stdlib's probes)
    return "site-packages" in (getattr(sys.modules.get(top), "__file__", None) or "")
with open(out, "w") as f:
    json.dump({top: stack for top, stack in found.items() if installed(top)}, f)
"""


# -- the pipeline ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    name: str
    chain: int
    dep: str
    out: str

    @property
    def cmd(self) -> str:
        return f"sh step.sh chain{self.chain} {self.dep} {self.out}"


def make_stages(n: int) -> list[Stage]:
    """``n`` stages in up to 4 independent chains; s{c}_{i} reads the out of s{c}_{i-1}."""
    chains = min(CHAINS, n)
    stages = []
    for c in range(chains):
        prev = f"in{c}.txt"
        for i in range(n // chains + (c < n % chains)):
            stages.append(Stage(f"s{c}_{i}", c, prev, f"out{c}_{i}.txt"))
            prev = f"out{c}_{i}.txt"
    return stages


def stages_yaml(stages: list[Stage]) -> str:
    """The same stages for pipeline.yaml and dvc.yaml (both read params.yaml by default)."""
    lines = ["stages:"]
    for s in stages:
        lines += [f"  {s.name}:", f"    cmd: {s.cmd}", f"    deps: [{s.dep}, step.sh]"]
        lines += [f"    params: [chain{s.chain}.factor]", f"    outs: [{s.out}]"]
    return "\n".join(lines) + "\n"


def write_params(repo: Path, factors: dict[int, int]) -> None:
    text = "".join(f"chain{c}:\n  factor: {f}\n" for c, f in sorted(factors.items()))
    (repo / "params.yaml").write_text(text)


def write_project(repo: Path, stages: list[Stage], factors: dict[int, int], spec: str) -> None:
    repo.mkdir(parents=True)
    (repo / "step.sh").write_text(STEP_SH)
    for c in factors:
        rows = (f"{i} {(i * 7919 + c * 104729) % 100003}\n" for i in range(LINES))
        (repo / f"in{c}.txt").write_text("".join(rows))
    write_params(repo, factors)
    if spec:
        (repo / spec).write_text(stages_yaml(stages))


# -- the tools -------------------------------------------------------------------------------
def clean_env() -> dict[str, str]:
    drop = ("TETHER_", "DVC_", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
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


@dataclass(frozen=True)
class Tool:
    label: str
    kind: str  # "tether" or "dvc"
    args: tuple[str, ...] = ("repro",)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "", self.label)

    def argv(self) -> list[str]:
        return [str(TETHER_EXE if self.kind == "tether" else DVC_EXE), *self.args]

    def env(self, repo: Path) -> dict[str, str]:
        if self.kind == "tether":
            return tether_env()
        return {
            **clean_env(),
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(repo.parent / "dvc-site-cache"),
            "DVC_GLOBAL_CONFIG_DIR": str(repo.parent / "dvc-global"),
            "DVC_SYSTEM_CONFIG_DIR": str(repo.parent / "dvc-system"),
        }

    def ran(self, log: str) -> list[str]:
        """The stages this run executed, from its output."""
        pattern = r"^(\S+): running:" if self.kind == "tether" else r"^Running stage '([^']+)'"
        return re.findall(pattern, log, flags=re.M)


TOOLS = (
    Tool("tether", "tether"),
    Tool("dvc", "dvc"),
    Tool("tether -j 2", "tether", ("repro", "-j", "2")),
)


def make_repo(tool: Tool, repo: Path, stages: list[Stage], factors: dict[int, int]) -> None:
    """A fresh git repository holding the pipeline, its inputs and params, all committed."""
    write_project(repo, stages, factors, "pipeline.yaml" if tool.kind == "tether" else "dvc.yaml")
    env = tool.env(repo)
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    for key, value in (("user.name", "bench"), ("user.email", "bench@example.com")):
        run(["git", "config", key, value], cwd=repo)
    if tool.kind == "tether":
        run([TETHER_EXE, "init"], cwd=repo, env=env)
    else:
        run([DVC_EXE, "init", "-q"], cwd=repo, env=env)
        run([DVC_EXE, "config", "core.analytics", "false"], cwd=repo, env=env)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "pipeline"], cwd=repo)


# -- one round: fresh repositories, cold, no-op, one change ----------------------------------
@dataclass
class Round:
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # step -> tool -> s
    peak_mib: dict[str, dict[str, float]] = field(default_factory=dict)
    bare: dict[str, float] = field(default_factory=dict)  # step -> s of the bare commands
    errors: list[str] = field(default_factory=list)


def expected_runs(step: str, stages: list[Stage]) -> list[Stage]:
    return {"cold": stages, "no-op": [], "one change": [s for s in stages if s.chain == 0]}[step]


def bare_seconds(repo: Path, stages: list[Stage], env: dict[str, str], tries: int = 3) -> float:
    """The stage commands alone, run one after another as ``sh -c CMD`` (median of ``tries``)."""
    if not stages:
        return 0.0
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        for s in stages:
            subprocess.run(["sh", "-c", s.cmd], cwd=repo, env=env, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def differing_outs(repo: Path, bare: Path, stages: list[Stage]) -> list[str]:
    def read(path: Path) -> bytes | None:
        return path.read_bytes() if path.exists() else None

    return [s.out for s in stages if read(repo / s.out) != read(bare / s.out)]


def measure(tool: Tool, repo: Path, step: str, r: int, opts: argparse.Namespace) -> Measure:
    """Seconds and peak MiB of one ``repro``; an error when the wrong stages ran."""
    log = LOGS / f"r{r}-{tool.slug}-{step.replace(' ', '-')}.log"
    os.sync()  # neither tool pays for writes the other (or the setup) left behind
    m = run_timed(tool.argv(), repo, tool.env(repo), log, opts.timeout)
    want = {s.name for s in expected_runs(step, opts.stage_list)}
    got = tool.ran(log.read_text(errors="replace"))
    if set(got) != want or len(got) != len(want):
        m.error = f"ran {sorted(got)}, expected {sorted(want)} (log: {log})"
    return m


def run_round(r: int, opts: argparse.Namespace, tools: tuple[Tool, ...]) -> Round:
    stages = opts.stage_list
    factors = {c: 2 + c for c in sorted({s.chain for s in stages})}
    base = BASE / f"round{r}"
    shutil.rmtree(base, ignore_errors=True)
    repos = {t.label: base / t.slug / "repo" for t in tools}
    for tool in tools:
        make_repo(tool, repos[tool.label], stages, factors)
    bare = base / "bare"
    write_project(bare, stages, factors, "")
    out = Round()
    failed: set[str] = set()
    for step in STEPS:
        if step == "one change":
            factors[0] = 100 + r  # a value never seen: no run cache can answer it
            for repo in [*repos.values(), bare]:
                write_params(repo, factors)
        out.bare[step] = bare_seconds(bare, expected_runs(step, stages), clean_env())
        out.seconds[step], out.peak_mib[step] = {}, {}
        for tool in tools:
            if tool.label in failed:
                continue
            try:
                m = measure(tool, repos[tool.label], step, r, opts)
            except CommandError as exc:
                out.errors.append(f"round {r} {step} {tool.label}: {exc}")
                failed.add(tool.label)
                continue
            wrong = differing_outs(repos[tool.label], bare, stages)
            m.error = m.error or (f"outs differ from the bare commands': {wrong}" if wrong else "")
            if m.error:
                out.errors.append(f"round {r} {step} {tool.label}: {m.error}")
                failed.add(tool.label)
                continue
            out.seconds[step][tool.label], out.peak_mib[step][tool.label] = m.seconds, m.peak_mib
        print_round_line(r, step, out)
    if not opts.keep:
        shutil.rmtree(base)
    return out


def print_round_line(r: int, step: str, res: Round) -> None:
    cells = [f"{t} {s:.3f} s" for t, s in res.seconds[step].items()]
    load = os.getloadavg()[0]
    print(
        f"   round {r} {step:<10} " + " | ".join(cells) + f" | bare {res.bare[step]:.3f} s "
        f"| load {load:.1f}",
        flush=True,
    )


def warm_up(opts: argparse.Namespace) -> None:
    """Every step once, untimed, on a 4-stage pipeline: .pyc files and the page cache are warm."""
    small = argparse.Namespace(**{**vars(opts), "stage_list": make_stages(4), "keep": False})
    res = run_round(-1, small, TOOLS)
    if res.errors:
        raise CommandError("warm-up failed:\n" + "\n".join(res.errors))


# -- where Tether's no-op time goes ----------------------------------------------------------
def wall(argv: list[str], cwd: Path, env: dict[str, str], tries: int = 5) -> float:
    """Best wall time of a command, in seconds."""
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def importtime(argv: list[str], cwd: Path, log: Path) -> list[tuple[int, str, int]]:
    """``-X importtime`` of a command: (depth, module, cumulative µs) in printed order."""
    cmd = [str(TETHER_PY), "-X", "importtime", *argv]
    proc = subprocess.run(cmd, cwd=cwd, env=tether_env(), capture_output=True, text=True)
    log.write_text(proc.stderr)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, raw = line.split("|", 2)
        name = raw[1:]
        rows.append(((len(name) - len(name.lstrip())) // 2, name.strip(), int(cumulative)))
    return rows


def importer_of(row: int, rows: list[tuple[int, str, int]]) -> str:
    """The module whose import printed row ``row`` (its next line one level up), or '' (top)."""
    depth = rows[row][0]
    return next((name for d, name, _ in rows[row + 1 :] if d < depth), "")


def short(filename: str) -> str:
    """A source path from its package down: tether/..., sqlalchemy/..., subprocess.py."""
    if "/tether/" in filename:
        return "tether/" + filename.rsplit("/tether/", 1)[1]
    return re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", filename)


def who_imports(repo: Path, tag: str) -> dict[str, str]:
    """For each installed package ``tether repro`` imports: where its first import came from."""
    out = LOGS / f"probe-{tag}.json"
    run([TETHER_PY, "-c", PROBE, out, "repro"], cwd=repo, env=tether_env())
    found: dict[str, list[list[Any]]] = json.loads(out.read_text())
    where = {}
    for pkg, stack in found.items():
        frames = [f"{short(f)}:{line} {fn}" for f, line, fn in stack]
        via = [f for f in frames[:-1] if f.startswith("tether/")][-3:]
        inner = frames[-1] if frames else "?"
        where[pkg] = inner + (f" (via {' <- '.join(reversed(via))})" if via else "")
    return where


def imported(repo: Path, tag: str, skip: set[str], prepare: Callable[[], None]) -> dict[str, Any]:
    """What ``tether repro`` imports beyond ``skip``: modules, the top-level imports, each
    installed package (ms, first importer) and Tether's heaviest modules (ms, importer). Two
    runs (``-X importtime``, then the probe), each after ``prepare()``."""
    prepare()
    rows = importtime([str(TETHER_EXE), "repro"], repo, LOGS / f"importtime-{tag}.log")
    prepare()
    where = who_imports(repo, tag)
    ms = {name: us / 1000 for _, name, us in rows}
    mine = [
        (name, ms[name], importer_of(i, rows))
        for i, (d, name, _) in enumerate(rows)
        if d > 0 and name.startswith("tether.") and name not in skip
    ]
    return {
        "modules": sorted({name for _, name, _ in rows} - skip),
        "top_level": sorted(
            ((n, ms[n]) for d, n, _ in rows if d == 0 and n not in skip), key=lambda t: -t[1]
        ),
        "packages": {p: (ms.get(p, 0.0), w) for p, w in where.items() if p not in skip},
        "heaviest": sorted(mine, key=lambda t: -t[1])[:6],
    }


def noop_breakdown(repo: Path) -> dict[str, Any]:
    """Tether's no-op ``repro`` as python start-up, imports and the rest (each best of 5)."""
    env = tether_env()
    noop = wall([str(TETHER_EXE), "repro"], repo, env)
    startup = wall([str(TETHER_PY), "-c", "pass"], repo, env)
    at_start = {name for _, name, _ in importtime(["-c", "pass"], repo, LOGS / "it-pass.log")}
    out = imported(repo, "noop", at_start, lambda: None)
    names = ", ".join(n for n, _ in out["top_level"])
    imports = wall([str(TETHER_PY), "-c", f"import {names}"], repo, env)
    out |= {"startup_s": startup, "imports_s": imports - startup, "rest_s": noop - imports}
    return {"noop_s": noop, **out, "at_start": sorted(at_start)}


def profile(repo: Path, tag: str, top: int = 12) -> dict[str, Any]:
    """cProfile of one ``tether repro`` (main thread only): the total, the imports, Tether's
    functions by cumulative time and every function by its own time, as (ms, ms, calls, name)."""
    prof = LOGS / f"profile-{tag}.prof"
    run([TETHER_PY, "-m", "cProfile", "-o", prof, TETHER_EXE, "repro"], cwd=repo, env=tether_env())
    stats: dict[Any, Any] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    rows = [
        (ct * 1000, tt * 1000, nc, f"{short(f)}:{line} {fn}", fn)
        for (f, line, fn), (_cc, nc, tt, ct, _callers) in stats.items()
    ]
    tether = [r for r in rows if r[3].startswith("tether/") and not r[3].startswith("tether/cli/")]
    return {
        "total_ms": max(r[0] for r in rows),
        "imports_ms": max((r[0] for r in rows if r[4] == "_find_and_load"), default=0.0),
        "tether": sorted((r[:4] for r in tether if r[4] != "<module>"), reverse=True)[:top],
        "own": sorted((r[:4] for r in rows), key=lambda r: -r[1])[:top],
    }


def analyse(opts: argparse.Namespace) -> dict[str, Any]:
    """On a fresh Tether repository: a profile of the cold run, the no-op's start-up, imports
    and profile, then the one-change run's profile and extra imports (a new value each run)."""
    stages = opts.stage_list
    factors = {c: 2 + c for c in sorted({s.chain for s in stages})}
    repo = BASE / "analysis" / "repo"
    shutil.rmtree(repo.parent, ignore_errors=True)
    make_repo(TOOLS[0], repo, stages, factors)
    out: dict[str, Any] = {"profile_cold": profile(repo, "cold")}

    def change_param() -> None:  # a value never run, so chain 0 runs again
        factors[0] = 1000 if factors[0] < 1000 else factors[0] + 1
        write_params(repo, factors)

    out["noop"] = noop_breakdown(repo)
    out["profile_noop"] = profile(repo, "noop")
    change_param()
    out["profile_change"] = profile(repo, "change")
    seen = set(out["noop"]["modules"] + out["noop"]["at_start"])
    out["change"] = imported(repo, "change", seen, change_param)
    if not opts.keep:
        shutil.rmtree(repo.parent)
    return out


# -- report ----------------------------------------------------------------------------------
def median(rounds: list[Round], step: str, tool: str, key: str = "seconds") -> float | None:
    values = [getattr(r, key)[step][tool] for r in rounds if tool in getattr(r, key).get(step, {})]
    return statistics.median(values) if values else None


def summarize(rounds: list[Round], stages: list[Stage]) -> list[dict[str, Any]]:
    rows = []
    for step in STEPS:
        k = len(expected_runs(step, stages))
        row: dict[str, Any] = {"step": step, "stages_run": k}
        row["bare_s"] = statistics.median(r.bare[step] for r in rounds)
        for tool in TOOLS:
            row[f"{tool.label}_s"] = median(rounds, step, tool.label)
            row[f"{tool.label}_peak_mib"] = median(rounds, step, tool.label, "peak_mib")
        t, d, t2 = row["tether_s"], row["dvc_s"], row["tether -j 2_s"]
        row["ratio"] = d / t if t and d else None
        row["ratio_j2"] = d / t2 if t2 and d else None
        for tool in ("tether", "dvc"):
            s = row[f"{tool}_s"]
            row[f"{tool}_ms_per_stage"] = (s - row["bare_s"]) * 1000 / k if k and s else None
        rows.append(row)
    noop, change = rows[1]["tether_s"], rows[2]
    if noop and change["tether_s"] and change["stages_run"]:
        extra = change["tether_s"] - noop - change["bare_s"]
        change["tether_marginal_ms_per_stage"] = extra * 1000 / change["stages_run"]
    return rows


def targets(row: dict[str, Any]) -> str:
    parts = []
    if row["step"] != "cold":
        ok = row["ratio"] is not None and row["ratio"] >= RATIO_TARGET
        parts.append(f">={RATIO_TARGET:g}x " + ("ok" if ok else "MISS"))
    if row["stages_run"]:
        ms = row["tether_ms_per_stage"]
        ok = ms is not None and ms < OVERHEAD_TARGET_MS
        parts.append(f"<{OVERHEAD_TARGET_MS:g} ms/stage " + ("ok" if ok else "MISS"))
    return "; ".join(parts)


def fmt(value: float | None, spec: str = ".3f", unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


def print_table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    print()
    for key, value in meta.items():
        print(f"{key}: {value}")
    head = [
        "step",
        "stages run",
        "tether s",
        "dvc s",
        "dvc/tether",
        "tether -j 2 s",
        "dvc/tether -j 2",
        "bare cmds s",
        "tether ms/stage",
        "dvc ms/stage",
        "target",
    ]
    table = [head] + [
        [
            r["step"],
            str(r["stages_run"]),
            fmt(r["tether_s"]),
            fmt(r["dvc_s"]),
            fmt(r["ratio"], ".1f", "x"),
            fmt(r["tether -j 2_s"]),
            fmt(r["ratio_j2"], ".1f", "x"),
            fmt(r["bare_s"]),
            fmt(r["tether_ms_per_stage"], ".1f"),
            fmt(r["dvc_ms_per_stage"], ".1f"),
            targets(r),
        ]
        for r in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    rule = "  ".join("-" * w for w in widths)
    print(
        f"\nseconds: median of {meta['rounds']} round(s); ratio = DVC time / Tether time; "
        "ms/stage = (time - bare commands) / stages run"
    )
    print(rule)
    for i, r in enumerate(table):
        print(
            "  ".join(
                c.ljust(w) if j in (0, 10) else c.rjust(w)
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if i == 0:
            print(rule)
    print(rule)
    marginal = rows[2].get("tether_marginal_ms_per_stage")
    print(
        f"one change, tether ms/stage beyond its no-op (start-up and plan excluded): "
        f"{fmt(marginal, '.1f')}"
    )


def print_imports(title: str, imp: dict[str, Any]) -> None:
    print(
        f"  {title}: {len(imp['modules'])} modules; top-level (-X importtime, cumulative): "
        + ", ".join(f"{n} {v:.1f} ms" for n, v in imp["top_level"][:6])
    )
    print("    installed packages, -X importtime ms, and their first importer:")
    for pkg, (ms, where) in sorted(imp["packages"].items(), key=lambda kv: -kv[1][0]):
        print(f"      {pkg:<18} {ms:6.1f}  {where}")
    print("    Tether's heaviest modules, ms, imported by:")
    for name, ms, importer in imp["heaviest"]:
        print(f"      {name:<32} {ms:6.1f}  {importer}")


def print_analysis(a: dict[str, Any]) -> None:
    n = a["noop"]
    ms = {k: n[k] * 1000 for k in ("noop_s", "startup_s", "imports_s", "rest_s")}
    print(
        f"\nTether no-op, best of 5: {ms['noop_s']:.0f} ms = python start-up "
        f"{ms['startup_s']:.0f} ms + imports {ms['imports_s']:.0f} ms + the rest "
        f"{ms['rest_s']:.0f} ms (click, reading the yaml files, hashing deps, planning); imports "
        "timed as `python -c 'import <the top-level modules below>'` minus start-up"
    )
    print_imports("no-op imports", n)
    print_imports("one change imports in addition", a["change"])
    for tag in ("cold", "noop", "change"):
        p = a[f"profile_{tag}"]
        print(
            f"\ncProfile of `tether repro`, {tag}: {p['total_ms']:.0f} ms under the profiler, "
            f"{p['imports_ms']:.0f} ms of it importing (main thread only: stage commands run "
            f"in worker threads; .work/pipeline-logs/profile-{tag}.prof)"
        )
        for title, key in (("Tether functions, by cumulative", "tether"), ("by own time", "own")):
            print(f"  {title}:\n  {'cum ms':>8} {'own ms':>8} {'calls':>6}  function")
            for ct, tt, nc, name in p[key]:
                print(f"  {ct:8.1f} {tt:8.1f} {nc:6d}  {name}")


def describe(opts: argparse.Namespace, dvc_version: str) -> dict[str, Any]:
    commit = run(["git", "-C", PROJECT, "rev-parse", "--short", "HEAD"]).strip()
    dirty = run(["git", "-C", PROJECT, "status", "--porcelain", "src"]).strip()
    (WORK / "pipeline-tether-src.diff").unlink(missing_ok=True)
    if dirty:  # keep the uncommitted changes the run measured
        diff = run(["git", "-C", PROJECT, "diff", "HEAD", "--", "src"])
        (WORK / "pipeline-tether-src.diff").write_text(diff)
    version = run([TETHER_EXE, "--version"], env=tether_env()).strip()
    chains = len({s.chain for s in opts.stage_list})
    return {
        "quick": opts.quick,
        "rounds": opts.rounds,
        "pipeline": f"{len(opts.stage_list)} stages in {chains} independent chains; each stage "
        "`sh step.sh chainC IN OUT` (sed + awk on a 3 KiB file) with deps [IN, step.sh], params "
        "[chainC.factor], outs [OUT]; one change = chain0.factor set to a value never run",
        "tether": f"{version} (commit {commit}"
        + (", with uncommitted src changes: .work/pipeline-tether-src.diff)" if dirty else ")"),
        "dvc": f"DVC {dvc_version}",
        "fairness": "one job for both (DVC repro is sequential), Tether -j 2 as extra columns; "
        "fresh git repo per tool per round; os.sync() before every timed command; one untimed "
        "warm-up round; Tether runs from a copy of src/; every run checked for which stages ran "
        "and for outs equal to the bare commands'",
        "what each records": "tether: each stage a run (git status, environment, deps/outs "
        "lineage, index row, sealed record), outs stored, pipeline.lock, run cache; dvc: outs "
        "cached, dvc.lock, run cache",
        "page_cache": page_cache_note(),
        "python": platform.python_version(),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores, fs {fs_type(WORK)}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round instead of five")
    parser.add_argument("--stages", type=int, default=20, help="stages in the pipeline (20)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per command")
    parser.add_argument("--keep", action="store_true", help="keep the repositories afterwards")
    opts = parser.parse_args(argv)
    if opts.stages < 1:
        parser.error("--stages must be at least 1")
    opts.rounds = 1 if opts.quick else 5
    opts.stage_list = make_stages(opts.stages)
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    meta = describe(opts, ensure_dvc())
    snapshot_tether(TETHER_SRC, TETHER_PY, tether_env())
    for key, value in meta.items():
        print(f"{key}: {value}", flush=True)
    started = time.perf_counter()
    meta["loadavg_start"] = os.getloadavg()
    print("\nwarming up (every step once on a 4-stage pipeline, untimed) ...", flush=True)
    warm_up(opts)
    rounds = []
    for r in range(opts.rounds):
        rounds.append(run_round(r, opts, TOOLS))
    rows = summarize(rounds, opts.stage_list)
    analysis = analyse(opts)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["loadavg_end"] = os.getloadavg()
    print_table(rows, meta)
    print_analysis(analysis)
    errors = [e for r in rounds for e in r.errors]
    doc = {"meta": meta, "rows": rows, "analysis": analysis}
    return write_results(WORK / "pipeline-results.json", doc, errors, meta["seconds"])


if __name__ == "__main__":
    sys.exit(main())
