"""The registry under a root of trust at 100,000 signed events: ``tether model list`` and
``tether audit verify`` warm, a cold load (no fold cache: a fresh clone), and ``--full``.

``.venv/bin/python benchmarks/bench_governance.py`` builds, under ``$TMPDIR/tether-governance/``
(keys may not live in a repository), a repository whose root of trust was made by ``tether trust
init`` and whose registry log holds
100,000 events signed as ``tether.registry.store.append`` signs them under a root (the first ones
through the real CLI; the rest with ``EventLog.append`` and the same signing hook): cycles of
register, alias, request staging, approve, transition over 25 models. Then it times, each as a
separate ``tether`` process:

- ``model list`` warm (the fold cache is there) and cold (the cache deleted: what a fresh clone
  pays on its first command: it starts from the newest signed checkpoint);
- ``audit verify`` warm, and ``audit verify --full`` (every signature, no checkpoint, no cache).

No competitor applies: neither MLflow's registry nor DVC/GTO has signed events to verify (GTO
reads git tags; MLflow trusts its database). The targets are the issue's: list < 0.5 s warm,
audit < 2 s warm. ``--events N`` for a smaller log. Results go to
``benchmarks/.work/governance-results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _shared import run, write_results

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
# outside this repository: a private key is refused inside a git work tree
WORK = Path(os.environ.get("TETHER_BENCH_TMP", tempfile.gettempdir())) / "tether-governance"
PY = PROJECT / ".venv" / "bin" / "python"
TETHER = PROJECT / ".venv" / "bin" / "tether"
TARGETS = {"list_warm": 0.5, "audit_warm": 2.0}
MODELS = 25
POLICY = """
[groups]
leads = ["bob@example.com"]

[registry.policy.staging]
approvals = 1
self_approval = false
approvers = ["group:leads"]
"""
ROLES = {
    "alice": ["promoter", "approver"],
    "bob": ["approver"],
    "ci": ["ci"],
}


def build(repo: Path, events: int) -> dict[str, Any]:
    """The repository, its keys (under ``repo.parent / "keys"``) and the log; what was built."""
    shutil.rmtree(repo.parent, ignore_errors=True)
    repo.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    for k, v in (("user.email", "alice@example.com"), ("user.name", "alice")):
        run(["git", "config", k, v], cwd=repo)
    run([TETHER, "init"], cwd=repo, env=env)
    (repo / "train.py").write_text(
        "from pathlib import Path\nPath('model.pkl').write_bytes(b'w' * 4096)\n"
    )
    with (repo / ".gitignore").open("a") as f:
        f.write("model.pkl\n")
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "feat: train"], cwd=repo)
    out = run([TETHER, "run", "--json", "--name", "train", "--out", "model.pkl", "--", PY,
               "train.py"], cwd=repo, env=env)  # fmt: skip
    run_id = json.loads(out)["run_id"]
    run([PY, __file__, "--keys", str(repo)], cwd=repo, env=env)
    env = environment(repo, "alice")
    with (repo / "tether.toml").open("a") as f:
        f.write(POLICY)
    run([TETHER, "trust", "init"], cwd=repo, env=env)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "chore: trust"], cwd=repo)
    run([TETHER, "model", "register", "m00", "--run", run_id, "--path", "model.pkl"],
        cwd=repo, env=env)  # fmt: skip
    started = time.perf_counter()
    out = run([PY, __file__, "--worker", str(repo), "--events", str(events)], cwd=repo, env=env)
    built = json.loads(out.strip().splitlines()[-1])
    # one more event through the CLI, by an admin: it writes the signed checkpoint, as any
    # admin's or CI's append does every checkpoint.EVERY events
    run([TETHER, "model", "alias", "m00@v1", "best"], cwd=repo, env=env)
    built["build_s"] = time.perf_counter() - started
    return built


def make_keys(repo: Path) -> None:
    """A key per person, trusted in tether.toml with its roles (``tether trust init`` reads it)."""
    from tether import keyconfig, signing

    for who, roles in ROLES.items():
        email = f"{who}@example.com"
        info = signing.generate(email, repo.parent / "keys" / who)
        keyconfig.trust_key(repo / "tether.toml", info.public_pem, email, roles)


def pem(repo: Path, who: str) -> Path:
    return next((repo.parent / "keys" / who).glob("*.pem"))


def environment(repo: Path, who: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["TETHER_SIGNING_KEY"] = str(pem(repo, who))
    env["TETHER_KEYS_DIR"] = str(repo.parent / "keys" / who)
    return env


def worker(repo: Path, events: int) -> dict[str, Any]:
    """Append signed cycles until the log holds ``events``; the git mirror with one
    ``git fast-import``; the head signed as the CLI signs it."""
    from bench_registry import mirror_with_fast_import
    from tether import signing
    from tether.api import Project
    from tether.registry import store
    from tether.registry.fold import PAYLOAD_TYPE, _policy, policy_id

    ws = Project.open(repo).ws
    state = store.load_state(ws)
    first = state.version("m00", 1)
    log = store.event_log(ws)
    signers = {who: signing.load_signer(str(pem(repo, who))) for who in ROLES}
    staging = policy_id(_policy(state, "staging"))
    real_barrier = ws.store.barrier
    ws.store.barrier = lambda: None  # type: ignore[method-assign]
    added: list[Any] = []
    have = len(log.events())

    def add(who: str, kind: str, body: dict[str, Any]) -> Any:
        s = signers[who]
        ev = log.append(kind, body, actor=f"{who}@example.com",
                        sign=lambda data: s.sign(PAYLOAD_TYPE, data))  # fmt: skip
        added.append(ev)
        return ev

    numbers = {f"m{m:02d}": (1 if m == 0 else 0) for m in range(MODELS)}
    m = 0
    while have + len(added) < events:
        name = f"m{m % MODELS:02d}"
        m += 1
        numbers[name] += 1
        n = numbers[name]
        common = {"name": name, "version": n}
        if not (name == "m00" and n == 1):
            pass
        add("alice", "model.register", {**common, "object": first.object, "path": first.path,
            "run": first.run, "record": first.record, "description": f"nightly {n}",
            "commit": first.commit})  # fmt: skip
        add("alice", "model.alias", {"name": name, "alias": "latest", "version": n})
        req = add("alice", "model.request", {**common, "to": "staging", "comment": "",
                  "policy": staging, "evidence": []})  # fmt: skip
        add("bob", "model.approve", {"request": req.id, **common, "to": "staging",
            "comment": "ok", "policy": staging})  # fmt: skip
        add("bob", "model.transition", {**common, "stage": "staging", "request": req.id,
            "replaces": n - 1, "n": n})  # fmt: skip
    ws.store.barrier = real_barrier  # type: ignore[method-assign]
    ws.store._dirty = True
    ws.store.barrier()
    store.sign_head(ws, added[-1], signers["bob"])
    mirror = mirror_with_fast_import(ws, added)
    folded = store.load_state(ws)
    return {
        "events": have + len(added),
        "versions": sum(len(v) for v in folded.models.values()),
        "refused": len(folded.refused),
        "first_refused": [str(r) for r in folded.refused[:3]],
        "mirror": mirror,
    }


def timed(argv: list[Any], repo: Path, env: dict[str, str], rounds: int) -> dict[str, Any]:
    times, code, out = [], 0, ""
    for _ in range(rounds):
        started = time.perf_counter()
        proc = subprocess.run([str(a) for a in argv], cwd=repo, env=env, capture_output=True,
                              text=True)  # fmt: skip
        times.append(time.perf_counter() - started)
        code, out = proc.returncode, proc.stdout + proc.stderr
    return {"median_s": statistics.median(times), "min_s": min(times), "exit": code,
            "output_tail": out.strip().splitlines()[-3:]}  # fmt: skip


def measure(repo: Path, rounds: int) -> dict[str, Any]:
    env = environment(repo, "alice")
    cache = repo / ".tether" / "cache"
    out: dict[str, Any] = {}
    run([TETHER, "model", "list"], cwd=repo, env=env)  # warm the fold cache and the OS cache
    out["list_warm"] = timed([TETHER, "model", "list"], repo, env, rounds)
    out["audit_warm"] = timed([TETHER, "audit", "verify"], repo, env, rounds)
    colds = []
    for _ in range(rounds):
        for f in cache.glob("registry-*"):
            f.unlink()
        colds.append(timed([TETHER, "model", "list"], repo, env, 1)["median_s"])
    out["list_cold"] = {"median_s": statistics.median(colds), "min_s": min(colds)}
    out["audit_full"] = timed([TETHER, "audit", "verify", "--full"], repo, env, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="keep a log built before")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--keys", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.keys:
        make_keys(opts.keys)
        return 0
    if opts.worker:
        sys.path.insert(0, str(HERE))
        print(json.dumps(worker(opts.worker, opts.events)))
        return 0
    started = time.perf_counter()
    repo = WORK / "repo"
    built: dict[str, Any] = {"reused": True}
    if not (opts.reuse and (repo / ".tether").is_dir()):
        print(f"building a log of {opts.events:,} signed events under a root of trust…")
        built = build(repo, opts.events)
        print(f"  built in {built['build_s']:.0f} s: {built['versions']} versions, "
              f"{built['refused']} refused {built['first_refused']}")  # fmt: skip
    figures = measure(repo, opts.rounds)
    errors = []
    print(f"\n{'command':<28}{'seconds':>10}{'target':>10}")
    for key, label in (("list_warm", "model list (warm)"), ("list_cold", "model list (cold)"),
                       ("audit_warm", "audit verify (warm)"),
                       ("audit_full", "audit verify --full")):  # fmt: skip
        got = figures[key]["median_s"]
        target = TARGETS.get(key)
        print(f"{label:<28}{got:>10.2f}{(f'< {target}' if target else '-'):>10}")
        if figures[key].get("exit", 0) not in (0,):
            errors.append(f"{label} exited {figures[key]['exit']}: {figures[key]['output_tail']}")
    print("\nno competitor applies: MLflow's registry and GTO have no signed events to verify")
    doc = {"events": opts.events, "built": built, "figures": figures, "targets": TARGETS}
    out = HERE / ".work" / "governance-results.json"
    return write_results(out, doc, errors, round(time.perf_counter() - started))


if __name__ == "__main__":
    sys.exit(main())
