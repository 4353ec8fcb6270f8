"""Tether against DVC on "does this commit's result reproduce?", side by side.

``.venv/bin/python benchmarks/bench_reproduce.py`` builds the pipeline of ``bench_pipeline.py``
(20 cheap shell stages in 4 chains) in a fresh git repository per tool, runs it once and commits
the result, then times the reproduction a user of each tool would run:

* Tether: ``tether reproduce PIPELINE_RUN``: a clean worktree at the run's commit with its
  recorded diff, the data restored, every stage re-run without the run cache, every out compared
  by id; the verdict REPRODUCED is checked (exit 0).
* DVC: ``git worktree add`` at the same commit, ``dvc repro --force`` there (every stage, no run
  cache), ``git diff --exit-code dvc.lock`` (the outs' hashes against the committed lock), and
  the worktree removed: DVC has no reproduce verb, and this is what its docs suggest.

Each cell is the median of the rounds; the ratio is DVC/Tether. ``--quick``: one round.
Numbers go to ``benchmarks/.work/reproduce-results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _shared import CommandError, run, snapshot_tether, write_results
from bench_data import DVC_EXE, ensure_dvc, run_timed
from bench_pipeline import (
    TETHER_EXE,
    TETHER_PY,
    TETHER_SRC,
    WORK,
    Tool,
    make_repo,
    make_stages,
    tether_env,
)

BASE = WORK / "reproduce"
LOGS = WORK / "reproduce-logs"
TOOLS = (Tool("tether", "tether"), Tool("dvc", "dvc"))

# The DVC user's reproduction, as one timed command: exit 0 only when every out hashes the same.
DVC_REPRODUCE = """\
set -u
tree=$(mktemp -d "$TMPDIR/dvc-reproduce-XXXXXX")
git worktree add -q --detach "$tree" HEAD
( cd "$tree" && "$DVC" repro --force -q && git diff --exit-code --stat dvc.lock )
rc=$?
git worktree remove --force "$tree"
exit $rc
"""


def prepare(tool: Tool, repo: Path, stages: list[Any]) -> str:
    """Run the pipeline once and commit its lock; Tether's pipeline run id, or "" for DVC."""
    factors = {c: 2 + c for c in sorted({s.chain for s in stages})}
    make_repo(tool, repo, stages, factors)
    env = tool.env(repo)
    run([*tool.argv()], cwd=repo, env=env)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "locked"], cwd=repo)
    if tool.kind == "dvc":
        return ""
    listed = run(
        [TETHER_EXE, "runs", "list", "--where", "tags.kind = 'pipeline'", "--json"],
        cwd=repo,
        env=env,
    )
    (newest, *_) = json.loads(listed)
    return str(newest["id"])


def measure(tool: Tool, repo: Path, run_id: str, r: int, timeout: float) -> float:
    log = LOGS / f"r{r}-{tool.slug}.log"
    env = {**tool.env(repo), "TMPDIR": str(BASE), "DVC": str(DVC_EXE)}
    if tool.kind == "tether":
        argv = [str(TETHER_EXE), "reproduce", run_id]
    else:
        argv = ["sh", "-c", DVC_REPRODUCE]
    os.sync()
    m = run_timed(argv, repo, env, log, timeout)
    text = log.read_text(errors="replace")
    if tool.kind == "tether" and "REPRODUCED" not in text:
        raise CommandError(f"tether reproduce did not say REPRODUCED (log: {log})")
    assert m.seconds is not None
    return m.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round instead of five")
    parser.add_argument("--stages", type=int, default=20, help="stages in the pipeline (20)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per command")
    opts = parser.parse_args(argv)
    rounds = 1 if opts.quick else 5
    stages = make_stages(opts.stages)
    LOGS.mkdir(parents=True, exist_ok=True)
    dvc_version = ensure_dvc()
    snapshot_tether(TETHER_SRC, TETHER_PY, tether_env())
    started = time.perf_counter()
    seconds: dict[str, list[float]] = {t.label: [] for t in TOOLS}
    errors: list[str] = []
    for r in range(rounds + 1):  # round 0 warms both tools up, untimed
        for tool in TOOLS:
            repo = BASE / f"r{r}-{tool.slug}" / "repo"
            run(["rm", "-rf", repo.parent])
            repo.parent.mkdir(parents=True)
            try:
                run_id = prepare(tool, repo, stages)
                took = measure(tool, repo, run_id, r, opts.timeout)
            except CommandError as exc:
                errors.append(f"{tool.label}, round {r}: {exc}")
                continue
            if r:
                seconds[tool.label].append(took)
                print(f"round {r} {tool.label:>7}: {took:.3f} s", flush=True)
            run(["rm", "-rf", repo.parent])
    median = {k: statistics.median(v) if v else None for k, v in seconds.items()}
    t, d = median["tether"], median["dvc"]
    ratio = d / t if t and d else None
    print(f"\nreproduce a {len(stages)}-stage pipeline run (median of {rounds}, DVC {dvc_version})")
    print(f"{'tool':>8} {'seconds':>8}")
    for label, value in median.items():
        print(f"{label:>8} {'-' if value is None else f'{value:8.3f}'}")
    print(f"DVC/Tether: {'-' if ratio is None else f'{ratio:.2f}x'}")
    doc = {
        "stages": len(stages),
        "rounds": rounds,
        "dvc": dvc_version,
        "seconds": seconds,
        "median": median,
        "ratio_dvc_over_tether": ratio,
        "loadavg": os.getloadavg(),
    }
    took = round(time.perf_counter() - started, 1)
    return write_results(WORK / "reproduce-results.json", doc, errors, took)


if __name__ == "__main__":
    sys.exit(main())
