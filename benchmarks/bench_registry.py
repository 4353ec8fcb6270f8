"""Tether's model registry: ``tether audit verify`` over 100,000 events, ``tether model get`` of a
1 GiB signed model against a plain copy of the same bytes.

``.venv/bin/python benchmarks/bench_registry.py`` builds, under ``benchmarks/.work/registry/``, a
repository whose registry log holds 100,000 signed events (the first cycle through the real CLI,
the rest appended with ``EventLog.append`` and signed exactly as ``tether.registry.store.append``
signs) and times ``tether audit verify`` on it, then profiles it and times its parts in-process.
Then a second repository with a 1 GiB model (random bytes, an output of a ``tether run``), signed
and moved to production by two approvers under ``require = ["signed"]``, and times ``tether model
get NAME@production -o DIR`` against ``shutil.copyfile`` and ``cp`` of the cached object, with
where get's time goes. No competitor applies: MLflow's registry has no audit trail and no signed
releases. ``--quick``: 20,000 events, 256 MiB, one round. Numbers go to
``benchmarks/.work/registry-results.json``. See ``benchmarks/README.md``.
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
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _shared import CommandError, chosen_workloads, run, snapshot_tether, tail
from bench_data import Measure, fs_type, page_cache_note, run_timed

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
WORK = HERE / ".work"
BASE = WORK / "registry"  # the two repositories and the keys
LOGS = WORK / "registry-logs"  # one log per command, the .prof files
TETHER_PY = PROJECT / ".venv" / "bin" / "python"
TETHER_EXE = PROJECT / ".venv" / "bin" / "tether"
TETHER_SRC = WORK / "registry-tether-src"  # a copy of src/: one run measures one version
MIB = 1 << 20
CHUNK = 8 * MIB  # what release._copy_checked reads at a time

AUDIT_TARGET_S = 2.0  # for 100,000 events
AUDIT_TARGET_EVENTS = 100_000
GET_TARGET_RATIO = 1.5  # get / copy
COMPETITOR_NOTE = (
    "no competitor tool applies: MLflow's model registry has no audit trail (no hash-chained, "
    "signed log to verify) and no signed releases; the reference for `get` is a plain copy of "
    "the same bytes (shutil.copyfile of the cached object, and cp)"
)

PEOPLE = ("alice", "bob", "carol", "ci")  # every one an approver; bob and carol are the leads
MODEL = "clf"  # the model the CLI registers first
BULK_MODELS = 25  # bulk versions go round-robin to m00..m24
POLICY = """
[groups]
leads = ["bob@example.com", "carol@example.com"]

[registry.policy.staging]
approvals = 1
self_approval = false

[registry.policy.production]
approvals = 2
self_approval = false
approvers = ["group:leads"]
require = [{require}]
"""
TRAIN_PY = """\
import os, sys
size, left = int(sys.argv[1]), int(sys.argv[1])
with open("model.bin", "wb") as f:  # random bytes: nothing compresses or dedups them
    while left:
        n = min(left, 8 << 20)
        f.write(os.urandom(n))
        left -= n
print(f"wrote model.bin ({size} bytes)")
"""

# -- workers: run by Tether's interpreter (the snapshot first on sys.path), one JSON line out ----


def w_build_audit(spec: dict[str, Any]) -> dict[str, Any]:
    """Append events until the registry log holds ``spec["events"]``: cycles of register,
    request staging, approve, transition, request production, approve, approve, transition (an
    alias every 10th version), round-robin over BULK_MODELS models, every event signed by its
    actor's trusted key as ``store.append`` signs it. Each append is ``EventLog.append`` (its
    locks, head lookup, redaction, sealing, writing the object); only durability is batched: the
    cache's syncfs and the head ref (kept in memory meanwhile) are written once at the end. Then
    the signed head (the real ``sign_head``) and the git mirror of the new events with one
    ``git fast-import``."""
    from tether import keyconfig, signing
    from tether.api import Project
    from tether.events import Event, EventLog
    from tether.objects.refs import RefStore
    from tether.redact import Redactor
    from tether.registry import store

    class BatchedRefs(RefStore):
        """The head kept in memory while the log is built (ext4 flushes a file's data when a
        rename replaces another file: a millisecond per event here), written once at the end."""

        def __init__(self, root: Path) -> None:
            super().__init__(root)
            self.held: dict[str, tuple[str, ...]] = {}

        def set(self, name: str, ids: Any, *, durable: bool = True) -> None:
            self.held[name] = tuple(ids)

        def get(self, name: str) -> tuple[str, ...] | None:
            return self.held[name] if name in self.held else super().get(name)

    ws = Project.open(spec["repo"]).ws
    state = store.load_state(ws)
    first = state.version(MODEL, 1)
    cli_events = store.event_log(ws).events()
    before = len(cli_events)
    cli_keys = {ev.kind: sorted(ev.body) for ev in cli_events}
    trusted = keyconfig.trusted_keys(store.project_config(ws))
    signers = {who: signing.load_signer(path) for who, path in spec["keys"].items()}
    identity = {who: trusted[s.keyid].identity for who, s in signers.items()}
    log = EventLog(ws.store, BatchedRefs(ws.refs.root), store.LOG, ws.dot / "locks")
    real_barrier = ws.store.barrier
    ws.store.barrier = lambda: None  # type: ignore[method-assign]
    redactor = Redactor()
    added: list[tuple[Event, str]] = []
    want = spec["events"] - before

    def add(who: str, kind: str, body: dict[str, Any]) -> Event:
        body = {k: redactor.redact(v) if isinstance(v, str) else v for k, v in body.items()}
        payload = json.dumps({"kind": kind, **body}, sort_keys=True).encode()
        body = {**body, "signed": signers[who].sign(store.PAYLOAD_TYPE, payload)}
        ev = log.append(kind, body, actor=identity[who])
        added.append((ev, who))
        return ev

    def cycle(name: str, number: int, staged: dict[tuple[str, str], int]) -> Any:
        common = {"name": name, "version": number}
        yield "ci", "model.register", {
            **common, "object": first.object, "path": first.path, "run": first.run,
            "record": first.record, "description": f"nightly {number}", "commit": first.commit,
        }  # fmt: skip
        for stage, approvers in (("staging", ("bob",)), ("production", ("bob", "carol"))):
            req = yield "alice", "model.request", {
                **common, "to": stage, "comment": f"{name} v{number} to {stage}",
                "policy": state.policy,
            }  # fmt: skip
            for who in approvers:
                yield who, "model.approve", {
                    "request": req.id, **common, "to": stage, "comment": "looks good",
                    "policy": state.policy,
                }  # fmt: skip
            n = staged.get((name, stage), 0) + 1
            yield approvers[-1], "model.transition", {
                **common, "stage": stage, "request": req.id,
                "replaces": number - 1 if number > 1 else None, "n": n,
            }  # fmt: skip
            staged[name, stage] = n
        if number % 10 == 0:
            yield "alice", "model.alias", {"name": name, "alias": "champion", "version": number}

    started = time.perf_counter()
    staged: dict[tuple[str, str], int] = {}
    number = 0
    while len(added) < want:
        number += 1
        for m in range(BULK_MODELS):
            steps = cycle(f"m{m:02d}", number, staged)
            sent = None
            try:
                while len(added) < want:
                    who, kind, body = steps.send(sent)
                    sent = add(who, kind, body)
            except StopIteration:
                pass
            if len(added) >= want:
                break
    appended_s = time.perf_counter() - started
    ws.store.barrier = real_barrier  # type: ignore[method-assign]
    ws.store._dirty = True
    ws.store.barrier()  # one syncfs for every event object, before the head points at them
    last, who = added[-1]
    ws.refs.set(log.ref, [last.id])  # the head, durable now
    store.sign_head(ws, last, signers[who])
    mirror = mirror_with_fast_import(ws, [ev for ev, _ in added])
    total_s = time.perf_counter() - started
    kinds = Counter(ev.kind for ev, _ in added)
    odd = {
        k: sorted(ev.body)
        for ev, _ in added
        if (k := ev.kind) in cli_keys and sorted(ev.body) != cli_keys[k]
    }
    folded = store.load_state(ws)
    chain = store.event_log(ws).events()
    return {
        "events": len(chain),
        "cli_events": before,
        "bulk_events": len(added),
        "bulk_kinds": dict(kinds),
        "signed": sum(1 for e in chain if e.body.get("signed") is not None),
        "models": len(folded.models),
        "versions": sum(len(v) for v in folded.models.values()),
        "fields_unlike_cli": odd,
        "append_s": appended_s,
        "append_us_per_event": appended_s / max(1, len(added)) * 1e6,
        "build_s": total_s,
        "mirror": mirror,
    }


def mirror_with_fast_import(ws: Any, events: list[Any]) -> dict[str, Any]:
    """The git mirror of ``events`` as ``gitmirror.record`` writes it (one commit per event on
    refs/tether/events/registry, an empty tree, the event document in the message, a fixed
    identity at the event's time), with one ``git fast-import`` instead of three git processes
    per event. The message format is checked against the commit the CLI made for the event
    just before."""
    from tether.events import gitmirror
    from tether.gitio.repo import git

    ref = gitmirror.git_ref("registry")
    parent = git(ws.root, "rev-parse", ref).decode().strip()
    cli_message = git(ws.root, "log", "-1", "--format=%B", parent).decode()
    prev_id = cli_message.split(gitmirror.ID_LINE, 1)[1].split("\n", 1)[0]

    def message(oid: str, seq: int, kind: str) -> bytes:
        data = ws.store.read_bytes(oid).decode()
        return f"tether event {seq}: {kind}\n\n{gitmirror.ID_LINE}{oid}\n{data}\n".encode()

    prev = ws.store.read_bytes(prev_id)
    prev_doc = json.loads(prev)
    same = message(prev_id, prev_doc["seq"], prev_doc["event"]).decode().rstrip("\n")
    if same != cli_message.rstrip("\n"):
        raise RuntimeError("the mirror's message format differs from gitmirror.record's")
    chunks = []
    for i, ev in enumerate(events):
        msg = message(ev.id, ev.seq, ev.kind)
        who = f"tether <tether@localhost> {int(ev.time)} +0000"
        chunks.append(f"commit {ref}\nauthor {who}\ncommitter {who}\ndata {len(msg)}\n".encode())
        chunks.append(msg)
        chunks.append(f"from {parent}\n\n".encode() if i == 0 else b"\n")
    started = time.perf_counter()
    proc = subprocess.run(
        ["git", "fast-import", "--quiet", "--date-format=raw"],
        cwd=ws.root,
        input=b"".join(chunks),
        capture_output=True,
    )
    if proc.returncode:
        raise RuntimeError(f"git fast-import failed: {proc.stderr.decode()[-2000:]}")
    head_msg = git(ws.root, "log", "-1", "--format=%B", ref).decode()
    if f"{gitmirror.ID_LINE}{events[-1].id}\n" not in head_msg:
        raise RuntimeError("the mirror's head is not the log's head")
    count = int(git(ws.root, "rev-list", "--count", ref).decode())
    return {"commits": count, "fast_import_s": time.perf_counter() - started}


def w_audit_parts(spec: dict[str, Any]) -> dict[str, Any]:
    """What ``audit.verify`` does, part by part, in-process and unprofiled (warm), plus floors:
    the bare chain work (read, BLAKE3, json.loads per event) and bare Ed25519 verification with
    the public keys loaded once."""
    import base64

    from cryptography.hazmat.primitives import serialization

    from tether import keyconfig, signing
    from tether.api import Project
    from tether.hashing import hash_bytes
    from tether.registry import audit, store

    ws = Project.open(spec["repo"]).ws
    chain = store.event_log(ws)
    out: dict[str, Any] = {}

    def timed(key: str, fn: Any) -> Any:
        start = time.perf_counter()
        value = fn()
        out[key] = time.perf_counter() - start
        return value

    checked = timed("chain_verify_s", chain.verify)
    events = timed("chain_events_s", chain.events)
    signed = [e for e in events if e.body.get("signed") is not None]
    out["events"], out["signed"] = checked.count, len(signed)
    problems = timed("verify_events_s", lambda: [store.verify_event(ws, e) for e in events])
    out["problems"] = sum(1 for p in problems if p)
    timed("signed_head_s", lambda: store.signed_head(ws))
    timed("audit_verify_s", lambda: audit.verify(ws))
    # the pieces verify_event repeats for every signed event
    reps = 200
    start = time.perf_counter()
    for _ in range(reps):
        store.project_config(ws)
    out["project_config_us"] = (time.perf_counter() - start) / reps * 1e6
    config = store.project_config(ws)
    start = time.perf_counter()
    for _ in range(reps):
        trusted = keyconfig.trusted_keys(config)
    out["trusted_keys_us"] = (time.perf_counter() - start) / reps * 1e6
    out["trusted_key_count"] = len(trusted)
    sample = signed[: min(len(signed), 2000)]
    start = time.perf_counter()
    for e in sample:
        signing.verify(e.body["signed"], trusted)
    out["signing_verify_us"] = (time.perf_counter() - start) / max(1, len(sample)) * 1e6
    start = time.perf_counter()
    for e in sample:
        json.loads(signing.verify(e.body["signed"], trusted).payload)
    out["signing_verify_and_compare_us"] = (time.perf_counter() - start) / max(1, len(sample)) * 1e6
    # floors
    keys = {k: serialization.load_pem_public_key(t.public_pem.encode()) for k, t in trusted.items()}
    msgs = []
    for e in signed:
        env = e.body["signed"]
        sig = env["signatures"][0]
        payload = base64.b64decode(env["payload"])
        msgs.append((keys[sig["keyid"]], base64.b64decode(sig["sig"]), env["payloadType"], payload))
    start = time.perf_counter()
    for key, sig, ptype, payload in msgs:
        key.verify(sig, signing.pae(ptype, payload))  # type: ignore[union-attr]
    out["ed25519_floor_s"] = time.perf_counter() - start
    paths = [ws.store.path(e.id) for e in events]
    start = time.perf_counter()
    for e, path in zip(events, paths, strict=True):
        with open(path, "rb") as f:
            data = f.read()
        if hash_bytes(data) != e.id:
            raise RuntimeError(f"{e.id} does not hash to its id")
        json.loads(data)
    out["chain_floor_s"] = time.perf_counter() - start
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb") as f:
            f.read()
    out["read_floor_s"] = time.perf_counter() - start
    out["event_bytes_mean"] = statistics.mean(p.stat().st_size for p in paths[:2000])
    return out


def w_get_info(spec: dict[str, Any]) -> dict[str, Any]:
    """The production version's object, its file in the cache, and its size."""
    from tether.api import Project
    from tether.registry import release, store

    ws = Project.open(spec["repo"]).ws
    state = store.load_state(ws)
    v = state.resolve(f"{spec['name']}@production")
    loose = ws.store.loose_path(v.object)
    if loose is None:
        raise RuntimeError(f"{v.object} is not a loose object")
    return {
        "ref": v.ref,
        "object": v.object,
        "loose": str(loose),
        "size": loose.stat().st_size,
        "needs_signature": release.needs_signature(ws, v),
        "events": len(store.event_log(ws).events()),
    }


def w_get_parts(spec: dict[str, Any]) -> dict[str, Any]:
    """Where get's time goes, in-process on the cached object (read warm first, best of
    ``tries`` each): reading it in 8 MiB chunks as ``release._chunks`` does, with sha256, BLAKE3
    or both on the way, reading and writing without a hash, ``release._copy_checked`` itself
    (given the signed sha256, as for a signed release, and without), and what overlapping the
    hash with the write would give. Every written file is removed, then os.sync()."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    from blake3 import blake3

    from tether.api import Project
    from tether.registry import release

    ws = Project.open(spec["repo"]).ws
    src, oid, out = Path(spec["loose"]), spec["object"], Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f:
        sha = hashlib.file_digest(f, "sha256").hexdigest()

    def chunks() -> Any:
        with open(src, "rb", buffering=0) as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def read_only() -> None:
        for _ in chunks():
            pass

    def read_sha256() -> None:
        h = hashlib.sha256()
        for c in chunks():
            h.update(c)

    def read_blake3() -> None:
        h = blake3(max_threads=blake3.AUTO)
        for c in chunks():
            h.update(c)

    def read_both() -> None:
        h, g = blake3(max_threads=blake3.AUTO), hashlib.sha256()
        for c in chunks():
            h.update(c)
            g.update(c)

    def read_write() -> None:
        with open(out / "plain.bin", "wb") as f:
            for c in chunks():
                f.write(c)

    def copy_checked_sha256() -> None:
        release._copy_checked(ws, oid, out / "checked.bin", sha)

    def copy_checked_blake3() -> None:
        release._copy_checked(ws, oid, out / "checked.bin", None)

    def copyfile() -> None:
        shutil.copyfile(src, out / "copy.bin")

    def overlapped(make: Any) -> Any:
        """Each chunk hashed in a second thread while this one writes it (both release the
        GIL): the same bytes hashed and written, as _copy_checked does, but not one after the
        other. Not in Tether: what a change to _copy_checked would give."""

        def fn() -> None:
            hasher = make()
            with ThreadPoolExecutor(1) as pool, open(out / "overlap.bin", "wb") as f:
                for c in chunks():
                    pending = pool.submit(hasher.update, c)
                    f.write(c)
                    pending.result()
            hasher.hexdigest()

        return fn

    results = {}
    for name, fn in [
        ("read 8 MiB chunks", read_only),
        ("read + sha256", read_sha256),
        ("read + blake3 (all cores)", read_blake3),
        ("read + blake3 + sha256", read_both),
        ("read + write (no hash)", read_write),
        (SIGNED_PART, copy_checked_sha256),
        ("release._copy_checked, unsigned (no sha256 given)", copy_checked_blake3),
        ("shutil.copyfile (in-process)", copyfile),
        ("read, write || sha256 in a thread (not in Tether)", overlapped(hashlib.sha256)),
        ("read, write || blake3 in a thread (not in Tether)", overlapped(blake3)),
    ]:
        best = float("inf")
        for _ in range(spec["tries"]):
            read_only()  # the source warm, as for the timed commands
            os.sync()
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
            for f in out.iterdir():
                f.unlink()
        results[name] = best
    os.sync()
    return {"parts": results, "sha256": sha}


WORKERS = {"build_audit": w_build_audit, "audit_parts": w_audit_parts}
WORKERS |= {"get_info": w_get_info, "get_parts": w_get_parts}


# -- harness helpers -------------------------------------------------------------------------
def clean_env() -> dict[str, str]:
    drop = ("TETHER_", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for who in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{who}_NAME"], env[f"GIT_{who}_EMAIL"] = "bench", "bench@example.com"
    return env


def tether_env(keys_dir: Path | None = None, who: str | None = None) -> dict[str, str]:
    """The snapshot first on sys.path; .pyc files under .work (src/ is not written to); the
    keys folder and, for ``who``, their private key as the signing key."""
    env = {
        **clean_env(),
        "PYTHONPATH": str(TETHER_SRC),
        "PYTHONPYCACHEPREFIX": str(WORK / "pycache"),
    }
    if keys_dir is not None:
        env["TETHER_KEYS_DIR"] = str(keys_dir)
        if who is not None:
            env["TETHER_SIGNING_KEY"] = str(private_key(keys_dir, who))
    return env


def private_key(keys_dir: Path, who: str) -> Path:
    found = sorted((keys_dir / who).glob("*.pem"))
    if len(found) != 1:
        raise CommandError(f"expected one private key in {keys_dir / who}, found {len(found)}")
    return found[0]


def tether(repo: Path, keys: Path, who: str | None, *args: Any) -> str:
    """An untimed Tether command acting as ``who`` (their key signs)."""
    return run([TETHER_EXE, *args], cwd=repo, env=tether_env(keys, who))


def worker(name: str, spec: dict[str, Any], cwd: Path, timeout: float) -> dict[str, Any]:
    """This file run by Tether's interpreter as the worker ``name``: its JSON result."""
    log = LOGS / f"worker-{name}.log"
    argv = [str(TETHER_PY), str(Path(__file__).resolve()), "--worker", name, json.dumps(spec)]
    with open(log, "wb") as err:
        proc = subprocess.run(
            argv, cwd=cwd, env=tether_env(), stdout=subprocess.PIPE, stderr=err, timeout=timeout
        )
    if proc.returncode:
        raise CommandError(f"worker {name} failed (log: {log}):\n" + tail(log.read_text()))
    result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return result


def make_repo(repo: Path, keys: Path, require: str, model_bytes: int) -> str:
    """A git repository with Tether, four trusted approvers' keys (outside it), the policy,
    ``train.py`` and one ``tether run`` that wrote ``model.bin`` (``model_bytes`` random bytes) as
    an output; returns the run's name."""
    shutil.rmtree(repo.parent, ignore_errors=True)
    repo.mkdir(parents=True)
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    for key, value in (("user.name", "bench"), ("user.email", "bench@example.com")):
        run(["git", "config", key, value], cwd=repo)
    tether(repo, keys, None, "init")
    for who in PEOPLE:
        email = f"{who}@example.com"
        tether(repo, keys, None, "keys", "generate", "--identity", email, "--dir", keys / who)
        pub = private_key(keys, who).with_suffix(".pub")
        tether(repo, keys, None, "keys", "trust", pub, "--identity", email, "--role", "approver")
    with (repo / "tether.toml").open("a") as f:
        f.write(POLICY.replace("{require}", require))
    (repo / "train.py").write_text(TRAIN_PY)
    (repo / ".gitignore").write_text("model.bin\n")
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "train"], cwd=repo)
    name = "train"
    tether(repo, keys, None, "run", "--name", name, "--out", "model.bin", "--", TETHER_PY,
           "train.py", model_bytes)  # fmt: skip
    (repo / "model.bin").unlink()  # the cache holds it; the working copy is not needed
    return name


def promote(repo: Path, keys: Path, spec: str) -> None:
    """The real CLI: alice requests production, bob and carol (the leads) approve."""
    tether(repo, keys, "alice", "model", "request", spec, "--to", "production")
    tether(repo, keys, "bob", "model", "approve", spec)
    out = tether(repo, keys, "carol", "model", "approve", spec)
    if "is now in production" not in out:
        raise CommandError(f"{spec} did not reach production: {out}")


# -- audit -----------------------------------------------------------------------------------
@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)

    def add(self, m: Measure) -> None:
        self.seconds.append(m.seconds or 0.0)
        self.peak_mib.append(m.peak_mib or 0.0)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timed(argv: list[Any], cwd: Path, env: dict[str, str], tag: str, opts: Any) -> Measure:
    """One timed command (wall clock and peak RSS, launched as in the data benchmark)."""
    os.sync()  # no command pays for writes the setup or another command left behind
    return run_timed([str(a) for a in argv], cwd, env, LOGS / f"{tag}.log", opts.timeout)


def run_audit(opts: argparse.Namespace) -> dict[str, Any]:
    base = BASE / "audit"
    repo, keys = base / "repo", opts.keys_root / "audit"
    print(f"\n[audit] building a registry log of {opts.events:,} events ...", flush=True)
    started = time.perf_counter()
    run_name = make_repo(repo, keys, '"clean_tree"', MIB)
    tether(repo, keys, "ci", "model", "register", MODEL, "--run", run_name, "--path", "model.bin")
    tether(repo, keys, "alice", "model", "policy", "apply")
    tether(repo, keys, "alice", "model", "request", f"{MODEL}@v1", "--to", "staging")
    tether(repo, keys, "bob", "model", "approve", f"{MODEL}@v1")
    promote(repo, keys, f"{MODEL}@v1")
    tether(repo, keys, "alice", "model", "alias", f"{MODEL}@v1", "champion")
    cli_s = time.perf_counter() - started
    spec = {
        "repo": str(repo),
        "events": opts.events,
        "keys": {who: str(private_key(keys, who)) for who in PEOPLE},
    }
    built = worker("build_audit", spec, repo, opts.timeout)
    built["cli_s"] = cli_s
    if built["events"] != opts.events or built["fields_unlike_cli"]:
        raise CommandError(f"the log was not built as expected: {built}")
    print(
        f"   {built['events']:,} events ({built['cli_events']} through the CLI in {cli_s:.1f} s, "
        f"{built['bulk_events']:,} with EventLog.append at {built['append_us_per_event']:.0f} "
        f"µs each; mirror: {built['mirror']['commits']:,} commits by git fast-import in "
        f"{built['mirror']['fast_import_s']:.1f} s); {built['signed']:,} signed; "
        f"{built['models']} models, {built['versions']:,} versions",
        flush=True,
    )
    env = tether_env(keys)
    want = f"audit log verified: {opts.events} events, head signed by "
    verify = Timing()
    for r in range(-1, opts.rounds):  # round -1: untimed warm-up (page cache, .pyc files)
        m = timed([TETHER_EXE, "audit", "verify"], repo, env, f"audit-verify-r{r}", opts)
        text = (LOGS / f"audit-verify-r{r}.log").read_text()
        if want not in text:
            raise CommandError(f"`tether audit verify` said: {tail(text)}")
        if r >= 0:
            verify.add(m)
            print(f"   round {r} audit verify {m.seconds:.2f} s | load {load():.1f}", flush=True)
    # every signature checked again (the first audit on a machine, or --full)
    full = timed([TETHER_EXE, "audit", "verify", "--full"], repo, env, "audit-verify-full", opts)
    if want not in (LOGS / "audit-verify-full.log").read_text():
        raise CommandError("`tether audit verify --full` did not verify the log")
    print(f"   audit verify --full {full.seconds:.2f} s", flush=True)
    listing = timed([TETHER_EXE, "model", "list"], repo, env, "audit-model-list", opts)
    out = base / "out"
    small = timed([TETHER_EXE, "model", "get", f"{MODEL}@production", "-o", out], repo, env,
                  "audit-model-get", opts)  # fmt: skip
    if (out / "model.bin").stat().st_size != MIB:
        raise CommandError(f"`tether model get {MODEL}@production` wrote the wrong file")
    print(
        f"   model list {listing.seconds:.2f} s, model get of the 1 MiB {MODEL}@production "
        f"{small.seconds:.2f} s (each folds the whole log)",
        flush=True,
    )
    parts = worker("audit_parts", {"repo": str(repo)}, repo, opts.timeout)
    prof = profile([TETHER_EXE, "audit", "verify"], repo, env, "audit-verify")
    if not opts.keep:
        shutil.rmtree(base)
    return {
        "built": built,
        "verify_s": verify.seconds,
        "verify_median_s": verify.median,
        "verify_full_s": full.seconds,
        "verify_peak_mib": statistics.median(verify.peak_mib),
        "model_list_s": listing.seconds,
        "model_get_small_s": small.seconds,
        "parts": parts,
        "profile": prof,
    }


# -- profiles --------------------------------------------------------------------------------
def short(filename: str) -> str:
    """A source path from its package down: tether/..., cryptography/..., json/decoder.py."""
    if "/tether/" in filename:
        return "tether/" + filename.rsplit("/tether/", 1)[1]
    return re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", filename)


def profile(argv: list[Any], cwd: Path, env: dict[str, str], tag: str) -> dict[str, Any]:
    """cProfile of one command: the total, imports, named functions' cumulative and own time,
    and the heaviest functions by own time (ms, ms, calls, name)."""
    prof = LOGS / f"profile-{tag}.prof"
    run([TETHER_PY, "-m", "cProfile", "-o", prof, *argv], cwd=cwd, env=env)
    stats: dict[Any, Any] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    rows = [
        (ct * 1000, tt * 1000, nc, f"{short(f)}:{line} {fn}", short(f), fn)
        for (f, line, fn), (_cc, nc, tt, ct, _callers) in stats.items()
    ]

    def cum(where: str, fn: str) -> tuple[float, float, int]:
        found = [r for r in rows if r[4].endswith(where) and r[5] == fn]
        if not found:
            return (0.0, 0.0, 0)
        return (max(r[0] for r in found), sum(r[1] for r in found), sum(r[2] for r in found))

    named = {
        "EventLog.verify": cum("tether/events/chain.py", "verify"),
        "EventLog.events": cum("tether/events/chain.py", "events"),
        "EventLog._link": cum("tether/events/chain.py", "_link"),
        "ObjectStore.read_bytes": cum("tether/objects/store.py", "read_bytes"),
        "hash_bytes (BLAKE3)": cum("tether/hashing.py", "hash_bytes"),
        "chain._parse (json.loads + checks)": cum("tether/events/chain.py", "_parse"),
        "store.verify_event": cum("tether/registry/store.py", "verify_event"),
        "store.project_config (tomllib)": cum("tether/registry/store.py", "project_config"),
        "keyconfig.trusted_keys": cum("tether/signing.py", "trusted_keys"),
        "signing.public_key_id": cum("tether/signing.py", "public_key_id"),
        "signing.verify": cum("tether/signing.py", "verify"),
        "store.signed_head": cum("tether/registry/store.py", "signed_head"),
        "release.get": cum("tether/registry/release.py", "get"),
        "release._copy_checked": cum("tether/registry/release.py", "_copy_checked"),
        "release._statement": cum("tether/registry/release.py", "_statement"),
        "store.load_state": cum("tether/registry/store.py", "load_state"),
    }
    builtins = {}
    for r in rows:
        if r[4] == "~":
            builtins[r[5]] = (r[0], r[1], r[2])
    wanted = ("load_pem_public_key", "verify", "update", "write", "read", "loads")
    picked = {
        name: value
        for name, value in builtins.items()
        if any(w in name for w in wanted) and value[0] > 1.0
    }
    return {
        "total_ms": max(r[0] for r in rows),
        "imports_ms": max((r[0] for r in rows if r[5] == "_find_and_load"), default=0.0),
        "named": {k: v for k, v in named.items() if v[2]},
        "builtins": picked,
        "own": [r[:4] for r in sorted(rows, key=lambda r: -r[1])[:14]],
        "file": str(prof),
    }


# -- get -------------------------------------------------------------------------------------
def warm(path: Path) -> None:
    """Read the file once (untimed) so it is in the page cache for whichever command is next."""
    with open(path, "rb", buffering=0) as f:
        while f.read(CHUNK):
            pass


def file_blake3(path: Path) -> str:
    from blake3 import blake3

    h = blake3(max_threads=blake3.AUTO)
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "blake3:" + h.hexdigest()


GET_STEPS = ("get @production", "get @v2", "shutil.copyfile", "cp", "get tiny@production")
SIGNED_PART = "release._copy_checked, signed (the sha256 given)"
TINY = MIB  # the small signed model: get's fixed cost


def run_get(opts: argparse.Namespace) -> dict[str, Any]:
    base = BASE / "get"
    repo, keys = base / "repo", opts.keys_root / "get"
    size = opts.model_mib * MIB
    print(f"\n[get] a {opts.model_mib} MiB model, signed, in production ...", flush=True)
    started = time.perf_counter()
    run_name = make_repo(repo, keys, '"signed"', size)
    stored_s = time.perf_counter() - started
    register = ("model", "register", "big", "--run", run_name, "--path", "model.bin")
    tether(repo, keys, "alice", *register)
    tether(repo, keys, "alice", "model", "sign", "big", "1")
    tether(repo, keys, "alice", "model", "policy", "apply")
    promote(repo, keys, "big@v1")
    # v2: the same object, in no stage: no signature is needed, so no sha256 either
    tether(repo, keys, "ci", *register)
    # tiny: a 1 MiB model, signed and in production too: what get costs besides the bytes
    tether(repo, keys, None, "run", "--name", "train-tiny", "--out", "model.bin", "--",
           TETHER_PY, "train.py", TINY)  # fmt: skip
    (repo / "model.bin").unlink()
    tether(repo, keys, "alice", "model", "register", "tiny", "--run", "train-tiny", "--path",
           "model.bin")  # fmt: skip
    tether(repo, keys, "alice", "model", "sign", "tiny", "1")
    promote(repo, keys, "tiny@v1")
    info = worker("get_info", {"repo": str(repo), "name": "big"}, repo, opts.timeout)
    tiny = worker("get_info", {"repo": str(repo), "name": "tiny"}, repo, opts.timeout)
    if not info["needs_signature"] or info["size"] != size or tiny["size"] != TINY:
        raise CommandError(f"unexpected production versions: {info}, {tiny}")
    src = Path(info["loose"])
    print(
        f"   {info['ref']} in production ({info['events']} registry events), {size:,} bytes "
        f"at {short_path(src)}; run + store {stored_s:.1f} s, all setup "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    out = base / "out"
    env = tether_env(keys)
    copy_py = "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])"
    argv = {
        "get @production": [TETHER_EXE, "model", "get", "big@production", "-o", out],
        "get @v2": [TETHER_EXE, "model", "get", "big@v2", "-o", out],
        "shutil.copyfile": [sys.executable, "-c", copy_py, src, out / "model.bin"],
        "cp": ["cp", src, out / "model.bin"],
        "get tiny@production": [TETHER_EXE, "model", "get", "tiny@production", "-o", out],
    }
    expect = dict.fromkeys(argv, (size, info["object"]))
    expect["get tiny@production"] = (TINY, tiny["object"])
    timings = {step: Timing() for step in GET_STEPS}
    errors: list[str] = []
    for r in range(-1, opts.rounds):  # round -1: untimed warm-up
        order = GET_STEPS[r % len(GET_STEPS) :] + GET_STEPS[: r % len(GET_STEPS)]
        cells = []
        for step in order:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            os.sync()  # the previous output's writeback is not charged to this command
            warm(src)
            tag = f"get-r{r}-{re.sub(r'[^a-z0-9]+', '-', step)}"
            m = timed(argv[step], repo, env, tag, opts)
            got, (want_size, want_id) = out / "model.bin", expect[step]
            if not got.exists() or got.stat().st_size != want_size or file_blake3(got) != want_id:
                errors.append(f"round {r} {step}: model.bin is missing or differs")
            text = (LOGS / f"{tag}.log").read_text()
            if step.startswith("get") and "hashes verified" not in text:
                errors.append(f"round {r} {step}: {tail(text)}")
            signed = "signature by alice@example.com verified" in text
            if step.endswith("@production") and not signed:
                errors.append(f"round {r} {step}: the signature was not checked: {tail(text)}")
            if r >= 0:
                timings[step].add(m)
            cells.append(f"{step} {m.seconds:.2f} s")
        shutil.rmtree(out, ignore_errors=True)
        if r >= 0:
            print(f"   round {r} " + " | ".join(cells) + f" | load {load():.1f}", flush=True)
    os.sync()
    spec = {"repo": str(repo), "loose": str(src), "object": info["object"]}
    parts = worker("get_parts", {**spec, "out": str(base / "parts"), "tries": 2}, repo, 3600)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.sync()
    warm(src)
    prof = profile(argv["get @production"], repo, env, "model-get")
    shutil.rmtree(out, ignore_errors=True)
    if not opts.keep:
        shutil.rmtree(base)
    return {
        "size": size,
        "object": info["object"],
        "events": tiny["events"],
        "seconds": {s: t.seconds for s, t in timings.items()},
        "median_s": {s: t.median for s, t in timings.items()},
        "peak_mib": {s: statistics.median(t.peak_mib) for s, t in timings.items()},
        "parts": parts["parts"],
        "profile": prof,
        "errors": errors,
    }


def short_path(path: Path) -> str:
    try:
        return str(path.relative_to(PROJECT))
    except ValueError:
        return str(path)


def load() -> float:
    return os.getloadavg()[0]


# -- report ----------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def audit_target(events: int) -> float:
    """2 s at 100,000 events, scaled in proportion for another size (--quick)."""
    return AUDIT_TARGET_S * events / AUDIT_TARGET_EVENTS


def print_table(res: dict[str, Any], meta: dict[str, Any]) -> None:
    print()
    for key, value in meta.items():
        print(f"{key}: {value}")
    rows = [["workload", "what is timed", "seconds", "rate / ratio", "target"]]
    if "audit" in res:
        a = res["audit"]
        n, s = a["built"]["events"], a["verify_median_s"]
        limit = audit_target(n)
        scaled = "" if n == AUDIT_TARGET_EVENTS else f" (2 s x {n:,}/100,000)"
        rate = f"{n / s:,.0f} events/s"
        if scaled:
            rate += f" (at 100,000, linearly: {s * AUDIT_TARGET_EVENTS / n:.1f} s)"
        target = f"< {limit:g} s{scaled} {verdict(s < limit)}"
        rows.append([f"audit {n:,} events", "tether audit verify", f"{s:.2f}", rate, target])
        sf = a["verify_full_s"]
        rows.append([
            "", "tether audit verify --full (every signature again)", f"{sf:.2f}",
            f"{n / sf:,.0f} events/s", f"< {limit:g} s {verdict(sf < limit)}",
        ])  # fmt: skip
        rows.append(["", "tether model list (folds the log)", f"{a['model_list_s']:.2f}", "", "-"])
        rows.append([
            "", f"tether model get {MODEL}@production (1 MiB; folds the log)",
            f"{a['model_get_small_s']:.2f}", "", "-",
        ])  # fmt: skip
    if "get" in res:
        g = res["get"]
        med = g["median_s"]
        gib = g["size"] / (1 << 30)
        label = f"get {g['size'] // MIB:,} MiB"
        for step in GET_STEPS:
            s = med[step]
            rate = f"{gib / s:.2f} GiB/s"
            target = "-"
            if step == "get tiny@production":
                rate = f"fixed cost ({g['events']} registry events)"
            elif step.startswith("get"):
                r1, r2 = s / med["shutil.copyfile"], s / med["cp"]
                rate += f"; {r1:.2f}x copyfile, {r2:.2f}x cp"
                if step == "get @production":
                    target = (
                        f"<= {GET_TARGET_RATIO:g}x copyfile {verdict(r1 <= GET_TARGET_RATIO)}; "
                        f"<= {GET_TARGET_RATIO:g}x cp {verdict(r2 <= GET_TARGET_RATIO)}"
                    )
            what = {
                "get @production": "tether model get big@production -o DIR (signed)",
                "get @v2": "tether model get big@v2 -o DIR (same bytes, no signature needed)",
                "shutil.copyfile": "python -c shutil.copyfile(cached object, DIR/model.bin)",
                "cp": "cp cached-object DIR/model.bin",
                "get tiny@production": "tether model get tiny@production -o DIR (1 MiB, signed)",
            }[step]
            rows.append([label, what, f"{s:.2f}", rate, target])
            label = ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    rule = "  ".join("-" * w for w in widths)
    print(f"\nseconds: median of {meta['rounds']} round(s), wall clock of the whole command")
    print(rule)
    for i, r in enumerate(rows):
        print(
            "  ".join(
                c.rjust(w) if j == 2 else c.ljust(w)
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
        if i == 0:
            print(rule)
    print(rule)
    print(COMPETITOR_NOTE)


def print_profile(title: str, p: dict[str, Any]) -> None:
    print(
        f"\n{title}: {p['total_ms']:.0f} ms under the profiler, {p['imports_ms']:.0f} ms of it "
        f"importing ({short_path(Path(p['file']))}); the profiler slows Python-heavy code: read "
        "the shares"
    )
    print(f"  {'cum ms':>9} {'own ms':>9} {'calls':>8}  function")
    for name, (ct, tt, nc) in sorted(p["named"].items(), key=lambda kv: -kv[1][0]):
        print(f"  {ct:9.0f} {tt:9.0f} {nc:8d}  {name}")
    for name, (ct, tt, nc) in sorted(p["builtins"].items(), key=lambda kv: -kv[1][1]):
        print(f"  {ct:9.0f} {tt:9.0f} {nc:8d}  {name}")
    print("  by own time:")
    for ct, tt, nc, name in p["own"]:
        print(f"  {ct:9.0f} {tt:9.0f} {nc:8d}  {name}")


def print_audit_details(a: dict[str, Any]) -> None:
    p = a["parts"]
    n, k = p["events"], p["signed"]
    print(
        f"\naudit verify, part by part (in-process, warm, unprofiled; {n:,} events, {k:,} signed, "
        f"{p['event_bytes_mean']:.0f} bytes each on average, {p['trusted_key_count']} trusted "
        "keys):"
    )
    lines = [
        ("EventLog.verify: walk 1 (read, BLAKE3, parse each event)", p["chain_verify_s"]),
        ("EventLog.events: walk 2 (the same again)", p["chain_events_s"]),
        ("verify_event for every event", p["verify_events_s"]),
        ("signed_head (git cat-file + one signature)", p["signed_head_s"]),
        ("audit.verify, all of it", p["audit_verify_s"]),
    ]
    for label, s in lines:
        print(f"  {s:8.2f} s  {s / n * 1e6:7.1f} µs/event  {label}")
    print("  per signed event, verify_event repeats:")
    per = [
        ("project_config(): open + tomllib.loads(tether.toml)", p["project_config_us"]),
        (
            "keyconfig.trusted_keys(): every key's PEM parsed and its id checked",
            p["trusted_keys_us"],
        ),
        ("signing.verify(): PEM parsed again + Ed25519 verify", p["signing_verify_us"]),
    ]
    for label, us in per:
        print(f"  {us:8.1f} µs  x {k:,} = {us * k / 1e6:6.2f} s  {label}")
    print("  floors (one core):")
    floors = [
        ("Ed25519 verify alone, public keys loaded once", p["ed25519_floor_s"]),
        ("read + BLAKE3 + json.loads of every event, once", p["chain_floor_s"]),
        ("read every event file", p["read_floor_s"]),
    ]
    for label, s in floors:
        print(f"  {s:8.2f} s  {s / n * 1e6:7.1f} µs/event  {label}")
    print_profile("cProfile of `tether audit verify`", a["profile"])


def print_get_details(g: dict[str, Any]) -> None:
    gib = g["size"] / (1 << 30)
    print(
        f"\nmodel get, part by part (in-process on the cached object, page cache warm, best of "
        f"2, 8 MiB chunks as release._chunks reads; {g['size'] // MIB:,} MiB):"
    )
    for name, s in g["parts"].items():
        print(f"  {s:7.3f} s  {gib / s:6.2f} GiB/s  {name}")
    cli = g["median_s"]["get @production"]
    inproc = g["parts"][SIGNED_PART]
    print(
        f"  get big@production's CLI median beyond the in-process _copy_checked: "
        f"{cli - inproc:.3f} s; the whole `get tiny@production` (start-up, imports, load_state, "
        f"tether.toml, signature check, 1 MiB): {g['median_s']['get tiny@production']:.3f} s"
    )
    print_profile("cProfile of `tether model get NAME@production`", g["profile"])


def describe(opts: argparse.Namespace) -> dict[str, Any]:
    commit = run(["git", "-C", PROJECT, "rev-parse", "--short", "HEAD"]).strip()
    dirty = run(["git", "-C", PROJECT, "status", "--porcelain", "src"]).strip()
    (WORK / "registry-tether-src.diff").unlink(missing_ok=True)
    if dirty:  # keep the uncommitted changes the run measured
        diff = run(["git", "-C", PROJECT, "diff", "HEAD", "--", "src"])
        (WORK / "registry-tether-src.diff").write_text(diff)
    version = run([TETHER_EXE, "--version"], env=tether_env()).strip()
    return {
        "quick": opts.quick,
        "rounds": opts.rounds,
        "tether": f"{version} (commit {commit}"
        + (", with uncommitted src changes: .work/registry-tether-src.diff)" if dirty else ")"),
        "competitor": COMPETITOR_NOTE,
        "audit log": f"{opts.events:,} events in the registry chain: the first cycle through "
        "the CLI (register, policy apply, request staging, approve, transition, request "
        "production, 2 approvals, transition, alias), then cycles of register, request staging, "
        "approve, transition, request production, approve, approve, transition (an alias every "
        f"10th version) over {BULK_MODELS} models, appended with EventLog.append and DSSE-signed "
        "by the actor's trusted key as store.append signs (every actor has a key, so every event "
        "is signed, as Tether does when a key exists); durability batched (the head ref held "
        "in memory during the build and written once; one syncfs); the signed head by "
        "store.sign_head; the git mirror by one git fast-import "
        "(audit verify does not read the mirror; the per-version refs and git tags are skipped)",
        "get": f"a {opts.model_mib:,} MiB model of random bytes, an output of `tether run`, "
        'signed by alice, policy production = 2 approvals by the leads, require = ["signed"], '
        "moved to production by bob and carol: `get big@production` checks the signature, then "
        "copies in 8 MiB chunks hashing every byte (release._copy_checked: BLAKE3 against the "
        "object id, and sha256 against the signed digest); `get big@v2` is the same object in no "
        "stage (no signature needed: BLAKE3 only); `get tiny@production` a 1 MiB signed model in "
        "production (get's fixed cost)",
        "fairness": "every command is one process, timed by the same launcher (wall clock, peak "
        "RSS), os.sync() before each; page cache: the cached object is read once (untimed) "
        "before every timed command, so get, copyfile and cp all read it warm; each writes a "
        "fresh file in a fresh folder, into the page cache (none of them fsyncs); the order of "
        "the four commands rotates each round; one untimed warm-up round for both workloads; "
        "every output checked (size and BLAKE3 equal to the object id); Tether runs from a copy "
        "of src/; cp is coreutils (copy_file_range), shutil.copyfile uses sendfile: both copy "
        "inside the kernel, while get reads and writes through Python",
        "page_cache": page_cache_note(),
        "python": platform.python_version(),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores, fs {fs_type(WORK)}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events, 256 MiB, 1 round")
    parser.add_argument("--events", type=int, help="events in the audit log (100,000)")
    parser.add_argument("--model-mib", type=int, help="size of the model in MiB (1024)")
    parser.add_argument("--rounds", type=int, help="timed rounds (3; --quick 1)")
    parser.add_argument("--workloads", default="audit,get", help="audit,get (both)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    parser.add_argument("--keep", action="store_true", help="keep the repositories afterwards")
    opts = parser.parse_args(argv)
    opts.events = opts.events or (20_000 if opts.quick else AUDIT_TARGET_EVENTS)
    opts.model_mib = opts.model_mib or (256 if opts.quick else 1024)
    opts.rounds = opts.rounds or (1 if opts.quick else 3)
    if opts.events < 20 or opts.model_mib < 1 or opts.rounds < 1:
        parser.error("--events must be at least 20, --model-mib and --rounds at least 1")
    opts.chosen = chosen_workloads(parser, opts, ("audit", "get"))
    return opts


def check_disk(opts: argparse.Namespace) -> None:
    free = shutil.disk_usage(WORK).free
    need = (3 * opts.model_mib * MIB if "get" in opts.chosen else 0) + opts.events * 4096 + 2**30
    if free < need:
        raise CommandError(f"{free / 2**30:.1f} GiB free under {WORK}; this run needs about "
                           f"{need / 2**30:.1f} GiB")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    BASE.mkdir(parents=True, exist_ok=True)
    check_disk(opts)
    meta = describe(opts)
    snapshot_tether(TETHER_SRC, TETHER_PY, tether_env())
    for key, value in meta.items():
        print(f"{key}: {value}", flush=True)
    started = time.perf_counter()
    meta["loadavg_start"] = os.getloadavg()
    res: dict[str, Any] = {}
    errors: list[str] = []
    # private keys must live outside every git work tree (benchmarks/.work is inside one)
    opts.keys_root = Path(tempfile.mkdtemp(prefix="tether-bench-registry-keys-"))
    try:
        if "audit" in opts.chosen:
            res["audit"] = run_audit(opts)
        if "get" in opts.chosen:
            res["get"] = run_get(opts)
            errors += res["get"]["errors"]
    finally:
        shutil.rmtree(opts.keys_root, ignore_errors=True)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["loadavg_end"] = os.getloadavg()
    print_table(res, meta)
    if "audit" in res:
        print_audit_details(res["audit"])
    if "get" in res:
        print_get_details(res["get"])
    for error in errors:
        print(f"FAILED: {error}")
    out = WORK / "registry-results.json"
    out.write_text(json.dumps({"meta": meta, **res, "errors": errors}, indent=2, default=str))
    print(f"\nresults: {out} ({meta['seconds']} s)", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":  # run by Tether's interpreter
        print(json.dumps(WORKERS[sys.argv[2]](json.loads(sys.argv[3]))), flush=True)
        sys.exit(0)
    sys.exit(main())
