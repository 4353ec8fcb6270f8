"""`make demo`: a guided tour of Tether in a temporary folder, in five parts.

Part 1 versions data next to git. Part 2 trains the sentiment example (examples/sentiment/) a
few times and asks Tether which run did best and why two runs differ. Part 3 runs the same
classifier as a pipeline (examples/pipeline/), re-runs only what a change makes stale,
reproduces a past run and catches an unseeded random generator. Part 4 versions a prompt
(examples/prompt-ab/), evaluates and compares versions on real reviews, promotes one, lets the CI
gate reject a worse one and rolls back. Part 5 releases the pipeline's model under a policy
(examples/regulated/): two identities, a signed request, a refused self-approval, a signed and
verified release traced to its data, and one changed byte caught in the model and in the audit
log. Every step is a real command, printed before it runs; the tour fails loudly if any step does.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
SENTIMENT = Path(__file__).resolve().parent / "sentiment"
PIPELINE = Path(__file__).resolve().parent / "pipeline"
PROMPT_AB = Path(__file__).resolve().parent / "prompt-ab"
REGULATED = Path(__file__).resolve().parent / "regulated"
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    "GIT_AUTHOR_NAME": "Tether Demo",
    "GIT_AUTHOR_EMAIL": "demo@example.com",
    "GIT_COMMITTER_NAME": "Tether Demo",
    "GIT_COMMITTER_EMAIL": "demo@example.com",
    # Output is captured, so tell Tether's tables how wide the terminal is (wide when piped).
    "COLUMNS": str(shutil.get_terminal_size(fallback=(200, 24)).columns),
}


def part(title: str) -> None:
    print(f"\n\033[1;4m{title}\033[0m", flush=True)


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def sh(cmd: str, cwd: Path, *, expect: int = 0) -> str:
    print(f"$ {cmd}", flush=True)
    proc = subprocess.run(
        cmd, shell=True, cwd=cwd, env=ENV, capture_output=True, text=True, check=False
    )
    out = (proc.stdout + proc.stderr).rstrip()
    if out:
        print("  " + out.replace("\n", "\n  "), flush=True)
    if proc.returncode != expect:
        sys.exit(f"demo failed: `{cmd}` exited {proc.returncode} (expected {expect})")
    return out


def make_data(root: Path, n: int) -> None:
    rng = random.Random(7)
    for i in range(n):
        path = root / f"shard{i // 250:02d}" / f"rows{i:05d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = "\n".join(f"{i},{j},{rng.random():.6f}" for j in range(20))
        path.write_text("id,row,value\n" + rows + "\n")


def digest_tree(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tether-demo-") as tmp:
        base = Path(tmp)
        part("Part 1: data versioning")
        tour_data(base)
        part("Part 2: run tracking")
        tour_runs(base)
        part("Part 3: pipelines and reproducibility")
        tour_pipeline(base)
        part("Part 4: Prompts: evaluate, compare, promote, gate, roll back")
        tour_prompts(base)
        part("Part 5: Governance: a regulated release")
        tour_regulated(base)
        print(f"\nDone. Everything ran in {shlex.quote(str(base))} (now removed).")


def tour_data(base: Path) -> None:
    say("1. A new project from the template (git and Tether set up)")
    sh("tether new churn", base)
    repo = base / "churn"
    sh("ls -A", repo)

    say("2. Version a data set of 2,000 files next to git")
    make_data(repo / "data/raw", 2000)
    sh("tether add data/raw", repo)
    sh("cat data/raw.tether", repo)
    sh("git add -A && git commit -qm 'feat: raw data v1' && git log --oneline", repo)
    sh("tether status", repo)

    say("3. Change the data: status shows what changed, file by file")
    (repo / "data/raw/shard00/rows00001.csv").write_text("id,row,value\n1,0,0.5\n")
    (repo / "data/raw/shard03/rows00777.csv").unlink()
    (repo / "data/raw/extra.csv").write_text("id\n1\n")
    sh("tether status", repo)

    say("4. Restore it: plan first, then apply (unsaved changes need --force)")
    sh("tether checkout --dry-run", repo)
    sh("tether checkout", repo, expect=4)
    sh("tether checkout --force", repo)
    sh("tether status", repo)

    say("5. A second version, and what changed between commits")
    (repo / "data/raw/shard01/rows00300.csv").write_text("id,row,value\n300,0,0.25\n")
    (repo / "data/raw/new-labels.csv").write_text("id,label\n1,yes\n")
    sh("tether add data/raw", repo)
    sh("git commit -qam 'feat: raw data v2'", repo)
    sh("tether data diff HEAD~1 HEAD", repo)

    say("6. Push to a remote (a folder here; s3://bucket/prefix works the same)")
    sh(f"tether remote add origin {base / 'remote'}", repo)
    sh("git commit -qam 'chore: add remote'", repo)
    sh("tether push", repo)
    sh("tether push", repo)

    say("7. Clone elsewhere and pull: the same bytes come back")
    sh(f"git clone -q {repo} {base / 'clone'}", base)
    clone = base / "clone"
    sh("tether status", clone)
    sh("tether pull", clone)
    same = digest_tree(repo / "data/raw") == digest_tree(clone / "data/raw")
    print(f"  byte-identical: {'yes' if same else 'NO'}")
    if not same:
        sys.exit("demo failed: pulled data differs")

    say("8. Pull just a part of it into a third clone")
    sh(f"git clone -q {repo} {base / 'partial'}", base)
    sh("tether pull data/raw/shard02", base / "partial")
    sh("ls data/raw", base / "partial")

    say("9. Housekeeping: check every object, collect what nothing needs")
    sh("tether fsck", repo)
    sh("tether gc --dry-run", repo)
    sh("tether gc --all-commits", repo)


def tour_runs(base: Path) -> None:
    say("10. A training project: the sentiment example, its data versioned and committed")
    repo = base / "sentiment"
    sh("git init -q sentiment", base)
    sh(f"cp {shlex.quote(str(SENTIMENT))}/*.py . && ls", repo)
    sh("tether init", repo)
    sh("python prepare.py", repo)
    sh("tether add data", repo)
    sh("echo models/ >> .gitignore", repo)
    sh("git add -A && git commit -qm 'feat: sentiment data and training script'", repo)

    say("11. Record runs: params from the command line, metrics from the script's tether calls")
    sh("tether run -n baseline --commit-log -- python train.py --C 1.0", repo)
    sh("tether run -n c10 --commit-log -- python train.py --C 10.0 --max-features 5000", repo)

    say("12. Change the code, commit, and run again with another seed")
    train = repo / "train.py"
    old = "ngram_range=(1, args.ngram_max)"
    train.write_text(train.read_text().replace(old, f"{old}, sublinear_tf=True"))
    sh("git diff --stat && git commit -qam 'feat: sublinear term frequencies'", repo)
    sh(
        "tether run -n sublinear --commit-log -- "
        "python train.py --C 10.0 --max-features 5000 --seed 1",
        repo,
    )
    sh("python train.py --C 3.0  # no `tether run`: the script's tether calls start a run", repo)

    say("13. Find and compare runs")
    sh("tether runs list", repo)
    sh("tether runs list --sort 'metrics.accuracy desc' --limit 1", repo)
    sh("tether runs list --where 'params.C = 10.0 and metrics.f1 > 0.72'", repo)
    sh("tether runs compare baseline c10 sublinear", repo)

    say("14. Why do two runs differ? A change of parameters; a change of code and seed")
    sh("tether diff baseline c10", repo)
    sh("tether diff c10 sublinear", repo)
    sh("tether diff c10 sublinear --markdown  # for a CI comment", repo)

    say("15. One run in full, and the environment to rebuild it")
    sh("tether runs show sublinear", repo)
    sh("tether env export sublinear --format requirements | head -8", repo)

    say("16. The ledger: every --commit-log run is in experiment_log.yaml and in git")
    sh("cat experiment_log.yaml", repo)
    sh("git log --oneline", repo)


SHUFFLE = """\
import random
from pathlib import Path

import tether

reviews = [f"review {i}" for i in range(100)]
order = sorted(reviews, key=lambda _: random.random())  # no seed: a new order every run
Path("order.txt").write_text("\\n".join(order) + "\\n")
tether.log_metric("first", int(order[0].split()[1]))
tether.log_output("order.txt")
"""


def tour_pipeline(base: Path) -> None:
    say("17. The classifier as a pipeline: prepare -> featurize -> train -> evaluate")
    repo = base / "pipeline"
    sh("git init -q pipeline", base)
    src = shlex.quote(str(PIPELINE))
    sh(f"cp {src}/*.py {src}/*.yaml . && ls", repo)
    sh("cat pipeline.yaml", repo)
    sh("tether init", repo)
    sh("git add -A && git commit -qm 'feat: the classifier as a four-stage pipeline'", repo)

    say("18. Run it: every stage runs as a Tether run; pipeline.lock records what each made")
    sh("tether repro", repo)
    sh("cat pipeline.lock | head -23", repo)
    sh("git add -A && git commit -qm 'chore: pipeline.lock and metrics' && git status -s", repo)
    sh("tether repro", repo)

    say("19. Change a training param: only train and evaluate are stale, and Tether says why")
    sh("sed -i 's/^  C: 1.0 /  C: 10.0/' params.yaml && git diff", repo)
    sh("tether repro --dry-run", repo)
    sh("tether repro", repo)
    sh("tether runs list --where \"tags.stage = 'evaluate'\"", repo)
    sh("git add -A && git commit -qm 'exp: C = 10'", repo)

    say("20. Reproduce the first train run: its commit, its inputs by id, its metrics again")
    sh("tether runs list --where \"tags.stage = 'train'\"", repo)
    listed = subprocess.run(
        ["tether", "runs", "list", "--json", "--limit", "0"],
        cwd=repo, env=ENV, capture_output=True, text=True, check=True,
    )  # fmt: skip
    trains = [r for r in json.loads(listed.stdout) if r["tags"].get("stage") == "train"]
    first_train = min(trains, key=lambda r: r["started"])["id"]
    sh(f"tether reproduce {first_train}", repo)

    say("21. Catch an unseeded random generator: run the script twice, compare what it made")
    (repo / "shuffle.py").write_text(SHUFFLE)
    sh("git add shuffle.py && git commit -qm 'feat: shuffle the reviews' && cat shuffle.py", repo)
    sh("tether run --check-determinism -n unseeded -- python shuffle.py", repo, expect=1)
    sh("tether reproduce unseeded-1", repo, expect=1)  # DIFFERENT: reproduce catches it too
    seeded = SHUFFLE.replace("import tether\n", "import tether\n\ntether.seed(0)\n")
    (repo / "shuffle.py").write_text(seeded.replace("# no seed: a new", "# seeded: the same"))
    sh("git diff", repo)
    sh("tether run --check-determinism -n seeded -- python shuffle.py", repo)
    sh("tether reproduce seeded-1", repo)


def tour_prompts(base: Path) -> None:
    say("22. A prompt versioned in git: sentiment v1.0.0, and a suite of 300 real reviews")
    repo = base / "prompt-ab"
    src = shlex.quote(str(PROMPT_AB))
    sh("git init -q -b main prompt-ab", base)
    sh("git config user.email demo@example.com  # label events record who: this", repo)
    sh("tether init", repo)
    sh(
        f"mkdir -p prompts/sentiment && cp -r {src}/prompts/sentiment/v1.0.0 prompts/sentiment/",
        repo,
    )
    sh(f"mkdir evals && cp {src}/evals/sentiment.yaml evals/ && cp {src}/make_suite.py .", repo)
    sh("cat prompts/sentiment/v1.0.0/template.jinja2", repo)
    sh("python make_suite.py && head -3 evals/sentiment-cases.csv", repo)
    sh("tether prompt lint --suite evals/sentiment.yaml", repo)
    sh(
        "echo report.html >> .gitignore && git add -A && git commit -qm 'feat: sentiment prompt'",
        repo,
    )
    sh("tether prompt register sentiment@v1.0.0", repo)

    say(
        "23. Evaluate it. No model runs here: the `scripted` provider is a STAND-IN, rules in the"
        " suite that act as a crude model reading its prompt. Its scores say nothing about any real"
        " model; the reviews are real and every figure is computed from its answers"
    )
    sh("sed -n '/^# No model/,/^providers:/p' evals/sentiment.yaml", repo)
    sh("tether prompt eval sentiment@v1.0.0 --suite evals/sentiment.yaml --html report.html", repo)
    sh("tether prompt promote sentiment@v1.0.0 --label production", repo)

    say("24. v1.1.0 adds two hints on how critics write: what changed, and is it better?")
    sh("tether prompt bump sentiment", repo)
    sh(
        f"cp {src}/prompts/sentiment/v1.1.0/* prompts/sentiment/v1.1.0/  # the edit, ready-made",
        repo,
    )
    sh("tether prompt diff sentiment@v1.0.0 sentiment@v1.1.0", repo)
    sh("tether prompt eval sentiment@v1.1.0 --suite evals/sentiment.yaml", repo)
    sh("tether prompt compare sentiment@v1.0.0 sentiment@v1.1.0 --suite evals/sentiment.yaml", repo)

    say(
        "25. Ship it: register, staging first, then production. `--require-eval` wants evidence:"
        " an eval of this content on the committed suite by a real model, so the stand-in's eval"
        " is refused (with a real endpoint: `-p openai:gpt-4o-mini`, then promote)"
    )
    sh("git add -A && git commit -qm 'feat(prompts): sentiment v1.1.0'", repo)
    sh("tether prompt register sentiment@v1.1.0", repo)
    sh("tether prompt promote sentiment@v1.1.0 --label staging", repo)
    sh("tether prompt promote sentiment@v1.1.0 --require-eval --label production", repo, expect=4)
    sh("tether prompt promote sentiment@v1.1.0 --label production", repo)

    say("26. A pull request trims long reviews to save tokens (v1.2.0): the CI gate rejects it")
    sh("git checkout -q -b trim-reviews && tether prompt bump sentiment", repo)
    sh(f"cp {src}/prompts/sentiment/v1.2.0/* prompts/sentiment/v1.2.0/", repo)
    sh("tether prompt diff sentiment@v1.1.0 sentiment@v1.2.0 | grep '^[-+]Review'", repo)
    sh("git add -A && git commit -qm 'perf(prompts): trim long reviews'", repo)
    sh("tether prompt ci --base main --report prompts-report.md  # the PR comment", repo, expect=1)
    sh("git checkout -q main && tether prompt history sentiment", repo)

    say("27. Had v1.1.0 misbehaved in production, one command puts v1.0.0 back")
    sh("tether prompt rollback sentiment --label production", repo)
    sh("tether prompt render sentiment@production --var review='Not good, and far too long.'", repo)
    sh("tether prompt history sentiment | tail -1", repo)


# Each person's private key lives in their own keys folder, outside the repository; a folder
# holding one key needs no TETHER_SIGNING_KEY to pick it.
ALICE = "TETHER_KEYS_DIR=../keys/alice"
BOB = "TETHER_KEYS_DIR=../keys/bob"


def tour_regulated(base: Path) -> None:
    ENV.pop("TETHER_SIGNING_KEY", None)  # a key chosen outside the demo would sign for both
    repo = base / "regulated"
    model = release(base, repo)
    tamper(repo, model)


def release(base: Path, repo: Path) -> str:
    """Steps 28-35: keys, policy, train, register, request, approve, sign, serve, trace, audit.
    Returns the object id of the released model."""
    say("28. Two people, two keys: each private key in its owner's keys folder, outside the repo")
    sh("git init -q regulated", base)
    src = shlex.quote(str(PIPELINE))
    sh(f"cp {src}/*.py {src}/*.yaml . && tether init", repo)
    sh(f"{ALICE} tether keys generate --identity alice@example.com", repo)
    sh(f"{BOB} tether keys generate --identity bob@example.com", repo)

    say("29. The team trusts both keys as approvers and commits a policy for production")
    for who in ("alice", "bob"):
        sh(
            f"tether keys trust ../keys/{who}/*.pub --identity {who}@example.com --role approver",
            repo,
        )
    sh(f"tee -a tether.toml < {shlex.quote(str(REGULATED / 'policy.toml'))}", repo)
    sh(
        "git add -A && git commit -qm 'feat: pipeline, trusted keys and the production policy'",
        repo,
    )
    sh(f"{ALICE} tether model policy apply  # the policy in force, signed into the audit log", repo)

    say("30. Train at a clean commit; lineage names the run that wrote the model; register it")
    sh("tether repro", repo)
    traced = sh("tether lineage models/model.pkl --depth 1", repo)
    run = re.search(r"generated by: run train \[finished\] (\S+)", traced)
    if run is None:
        sys.exit("demo failed: lineage named no train run for models/model.pkl")
    out = sh(
        f"{ALICE} tether model register churn --run {run[1]} --path models/model.pkl "
        "--description 'logistic regression, C=1'",
        repo,
    )
    model = out.split()[2]  # registered churn@v1: blake3:… from run …

    say("31. alice asks for production: refused at once, the policy's `signed` gate names why")
    request = f"{ALICE} tether model request churn@v1 --to production --comment 'first release'"
    sh(request, repo, expect=4)
    sh(f"{BOB} tether model sign churn 1  # in-toto statement + SLSA provenance, DSSE", repo)
    sh(request, repo)

    say("32. alice cannot approve her own request; bob, a second identity, can")
    sh(f"{ALICE} tether model approve churn@v1", repo, expect=4)
    sh(f"{BOB} tether model approve churn@v1 --comment 'metrics and lineage reviewed'", repo)
    sh("tether model show churn@production", repo)
    sh("git tag  # the registry's steps, mirrored as git tags on the run's commit", repo)

    say("33. Serve it: `get` checks every byte against the signed digest; `verify` is offline")
    sh("tether model verify churn 1", repo)
    sh("tether model get churn@production -o serving/", repo)
    sh("tether model verify churn 1 --dir serving  # the served copy, too", repo)

    say("34. Trace the production model back to its data, code commit, environment and params")
    sh("tether lineage churn@production", repo)

    say("35. The audit trail: who did what, each decision signed, the chain and its head intact")
    sh("tether audit log", repo)
    sh("tether audit verify", repo)
    return model


def tamper(repo: Path, model: str) -> None:
    """Steps 36-37: one changed byte in the stored model, then in one audit event, caught."""
    say("36. Change one byte of the stored model: `get` refuses to serve it")
    stored = repo / ".tether/objects" / model[7:9] / model[9:]  # blake3:<2 hex>/<62 hex>
    original = stored.read_bytes()
    at = len(original) // 2
    changed = bytearray(original)
    changed[at] ^= 0x01
    rewrite(stored, bytes(changed))
    where = stored.relative_to(repo)
    print(f"  flipped byte {at} of {where}: {original[at]:#04x} -> {changed[at]:#04x}")
    sh("tether model get churn@production -o serving2/", repo, expect=4)
    sh("tether model verify churn 1", repo, expect=1)
    rewrite(stored, original)
    print("  restored the original bytes")
    sh("tether model get churn@production -o serving2/", repo)

    say("37. Change one byte of one audit event (bob's approval now names rob): it is caught")
    event = find_event(repo, "model.approve")
    original = event.read_bytes()
    edited = original.replace(b'"actor":"bob@', b'"actor":"rob@', 1)
    if edited == original:
        sys.exit(f"demo failed: {event} names no approver bob")
    rewrite(event, edited)
    print(f'  {event.relative_to(repo)}: "actor":"bob@example.com" -> "rob@example.com"')
    sh("tether audit verify", repo, expect=1)
    rewrite(event, original)
    print("  restored the original bytes")
    sh("tether audit verify", repo)


def rewrite(path: Path, data: bytes) -> None:
    """Overwrite a read-only object in place (what an attacker or a bad disk would do)."""
    mode = path.stat().st_mode
    path.chmod(mode | 0o200)
    path.write_bytes(data)
    path.chmod(mode)


def find_event(repo: Path, kind: str) -> Path:
    """The file of the newest registry event of KIND: the ref events/registry names the newest
    event, and each event names the one before it (``prev``)."""
    oid: str | None = (repo / ".tether/refs/events/registry").read_text().split()[0]
    while oid is not None:
        path = repo / ".tether/objects" / oid[7:9] / oid[9:]
        event = json.loads(path.read_bytes())
        if event["event"] == kind:
            return path
        oid = event["prev"]
    sys.exit(f"demo failed: the registry log holds no {kind} event")


if __name__ == "__main__":
    main()
