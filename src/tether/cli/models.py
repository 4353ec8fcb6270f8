"""``tether model``: the model registry, and ``tether audit``: its event log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tether.cli import exitcodes

if TYPE_CHECKING:
    from tether.api import ModelRegistry


def _models() -> ModelRegistry:
    from tether.api import Project

    return Project.open().models


@click.group()
def model() -> None:
    """The model registry: versions pointing at a run's model files, stages (staging,
    production, archived) reached through signed requests and approvals under the policies in
    tether.toml, free-form aliases, signed releases.

    \b
      tether model register NAME --run RUN --path model.pkl
      tether model request NAME@v3 --to production --comment "beats v2"
      tether model approve NAME@v3          # another identity's key
      tether model sign NAME 3 && tether model verify NAME 3
      tether model get NAME@production -o serving/

    In a project pointed at a team server (`tether server login`) each decision needs the
    server: its log is taken first, the decision is pushed to it at once, a server that does
    not answer within 3 s fails it with nothing recorded, and one it refuses is undone here.
    """


@model.command("register")
@click.argument("name")
@click.option("--run", "run", required=True, help="The run that made the model (id, prefix, name).")
@click.option("--path", "path", required=True, help="The model file or folder the run recorded.")
@click.option("--description", default="", help="What this version is.")
def register(name: str, run: str, path: str, description: str) -> None:
    """Register version N+1 of NAME: the object id of what RUN recorded for PATH (an output or
    an artifact), with the run's code, data, environment and params attached. A version never
    points at other bytes."""
    from tether.api import Project

    project = Project.open()
    picked = project.pick_run(run)
    if picked.notice:  # a name several runs bear: say which one made the model
        click.secho(picked.notice, fg="yellow", err=True)
    v = project.models.register(name, str(picked.id), path, description)
    click.echo(f"registered {v.ref}: {v.object} from run {v.run[:13]}")


@model.command("request")
@click.argument("spec")
@click.option("--to", "to", required=True, type=click.Choice(["staging", "production", "archived"]))
@click.option("--comment", default="", help="Why.")
def request(spec: str, to: str, comment: str) -> None:
    """Ask to move NAME@VERSION to a stage: a signed request that approvers decide. Refused at
    once when a release gate of that stage's policy fails (the message names the rule)."""
    req = _models().request(spec, to, comment)
    state = "done (no approval needed)" if req.status == "approved" else "waiting for approval"
    click.echo(
        f"request {req.id[7:19]}: {req.name}@v{req.version} -> {req.to} by {req.by}, {state}"
    )


def _decide(spec: str, approve: bool, comment: str) -> None:
    req = _models().decide(spec, approve, comment)
    if not approve:
        click.echo(f"rejected {req.name}@v{req.version} -> {req.to}")
    elif req.status == "approved":
        click.echo(f"approved: {req.name}@v{req.version} is now in {req.to}")
    else:
        click.echo(
            f"approval recorded ({len(set(req.approvals))} so far): "
            f"{req.name}@v{req.version} -> {req.to} waits for more"
        )


@model.command("approve")
@click.argument("spec", required=False)
@click.option("--comment", default="")
@click.option(
    "--ready",
    is_flag=True,
    help="Approve every open request this key may approve whose release gates pass (CI as an "
    "approver).",
)
def approve(spec: str | None, comment: str, ready: bool) -> None:
    """Approve a request (NAME@VERSION's open request, or a request id), signed with your key.
    It counts only if your key is trusted for an identity the stage's policy allows, with the
    approver role, and (unless the policy says so) not the requester's."""
    from tether.errors import UsageError

    if ready:
        found = _models().ready()
        if not found:
            click.echo("no open request is ready for this key")
        for req in found:
            _decide(req.id, True, comment or "release gates passed")
        return
    if spec is None:
        raise UsageError("say which request to approve (NAME@VERSION or its id), or --ready")
    _decide(spec, True, comment)


@model.command("reject")
@click.argument("spec")
@click.option("--comment", default="")
def reject(spec: str, comment: str) -> None:
    """Reject a request, signed with your key."""
    _decide(spec, False, comment)


@model.command("alias")
@click.argument("spec")
@click.argument("alias")
def alias(spec: str, alias: str) -> None:
    """Point ALIAS (champion, candidate…) at NAME@VERSION."""
    v = _models().set_alias(spec, alias)
    click.echo(f"{v.name}@{alias} -> v{v.number}")


@model.command("list")
def list_() -> None:
    """Every model and version, with stages and aliases."""
    state = _models().state()
    if not state.models:
        click.echo("no models registered: `tether model register NAME --run RUN --path PATH`")
    lines = []  # written at once: a registry of 20,000 versions prints in one write
    for _name, versions in sorted(state.models.items()):
        for v in sorted(versions.values(), key=lambda x: x.number):
            marks = [m for m in (v.stage, *sorted(v.aliases)) if m]
            signed = "signed" if v.signature else ""
            lines.append(f"{v.ref:<24} {' '.join(marks):<24} {signed:<7} run {v.run[:13]}")
    if lines:
        click.echo("\n".join(lines))


@model.command("show")
@click.argument("spec")
def show(spec: str) -> None:
    """NAME[@VERSION|@STAGE|@ALIAS]: the version, its object, run, code commit, requests."""
    state = _models().state()
    v = state.resolve(spec)
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(v.time))
    click.echo(f"{v.ref}  stage: {v.stage or '-'}  aliases: {', '.join(sorted(v.aliases)) or '-'}")
    click.echo(f"object: {v.object}  ({v.path})")
    click.echo(f"run: {v.run}  commit: {v.commit or '-'}")
    click.echo(f"registered {when} by {v.by}" + (f": {v.description}" if v.description else ""))
    click.echo(f"signature: {'by ' + str(v.signed_by) if v.signature else 'none'}")
    for r in state.requests.values():
        if (r.name, r.version) == (v.name, v.number):
            ok = ", ".join(sorted(set(r.approvals))) or "none"
            click.echo(f"request {r.id[7:19]} -> {r.to}: {r.status}, by {r.by}, approved by {ok}")


@model.command("get")
@click.argument("spec")
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
def get(spec: str, out: Path) -> None:
    """Write NAME@VERSION|STAGE|ALIAS's files into OUT, checking every byte against its id (and
    against the signed digests when the stage requires a signature)."""
    done = _models().get(spec, out)
    how = f", signature by {done.signer} verified" if done.signer else ""
    click.echo(f"{done.version.ref}: {done.files} file(s) in {out}, hashes verified{how}")


def _spec(name: str, version: int | None) -> str:
    """``NAME VERSION`` (as the issue spells it) or one ``NAME@vN|@STAGE|@ALIAS``."""
    return f"{name}@v{version}" if version is not None else name


@model.command("attest")
@click.argument("spec")
def attest(spec: str) -> None:
    """Sign, with a key holding the ci role, what this clone's runs say about NAME@VERSION's
    run: uncommitted changes or not, its last metric values, and whether a `tether reproduce`
    of it said REPRODUCED. Under a root of trust, the release gates count only this evidence,
    bound into the signed request."""
    v, facts = _models().attest(spec)
    said = "reproduced" if facts.reproduced else "not reproduced"
    tree = "dirty tree" if facts.dirty else "clean tree"
    click.echo(f"evidence for {v.ref}: {tree}, {said}, {len(facts.metrics)} metric(s)")


@model.command("sign")
@click.argument("name")
@click.argument("version", type=int, required=False)
def sign(name: str, version: int | None) -> None:
    """Sign NAME VERSION (or NAME@vN): an in-toto statement (the files' sha256) with SLSA provenance
    (commit, data ids, lock files, params, seeds, builder), in a DSSE envelope, with your key."""
    v = _models().sign(_spec(name, version))
    click.echo(f"signed {v.ref} by {v.signed_by}")


@model.command("verify")
@click.argument("name")
@click.argument("version", type=int, required=False)
@click.option(
    "--dir",
    "folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Check the files here (as `get` wrote them) instead of the cache.",
)
def verify(name: str, version: int | None, folder: Path | None) -> None:
    """Check NAME VERSION's (or NAME@vN|@STAGE's) signature against the trusted keys and every
    signed digest against the files. Needs no network. Exits 1 when anything does not verify."""
    from tether.errors import VerificationError

    try:
        done = _models().verify(_spec(name, version), folder)
    except VerificationError as exc:
        click.secho(f"PROBLEM: {exc}", fg="red", err=True)
        raise SystemExit(exitcodes.NEGATIVE) from None
    click.echo(f"{done.version.ref}: signed by {done.signer}; {done.files} file(s) match")


@model.command("push")
@click.option("--remote", default="origin", show_default=True, help="The git remote.")
def push(remote: str) -> None:
    """Push the registry's tags, its audit log, the log's signed head and checkpoint to a git
    remote, in one atomic push (refused if the remote's log moved on: `tether model pull`
    first). Model files travel with `tether push`."""
    _models().push(remote)
    click.echo(f"pushed the registry to {remote}")


@model.command("pull")
@click.option("--remote", default="origin", show_default=True, help="The git remote.")
@click.option(
    "--discard-local",
    is_flag=True,
    help="When both sides moved on, drop this clone's unpushed events and take the remote's log.",
)
def pull(remote: str, discard_local: bool) -> None:
    """Take the registry's tags, audit log, signed head and checkpoint from a git remote. What
    arrives is verified before anything moves (an event that does not verify is refused and
    named, exit 1). When this clone and the remote both moved on, a merge event joins the two
    logs (events are never rewritten); both registering the same NAME@vN (or the same
    transition, root version or signature) is refused: --discard-local keeps the remote's."""
    from tether.cli.render import echo_pulled

    pulled = _models().pull(remote, discard_local=discard_local)
    if echo_pulled(pulled, remote, "registry", "tether model push", "tether model pull"):
        raise SystemExit(exitcodes.NEGATIVE)


@model.group("policy")
def policy() -> None:
    """The promotion policies of tether.toml, recorded in the audit log."""


@policy.command("apply")
def policy_apply() -> None:
    """Record tether.toml's [registry.policy.*] as the policy in force (a signed event); later
    decisions record its id."""
    click.echo(f"policy in force: {_models().apply_policy()}")


@click.group()
def audit() -> None:
    """The registry's audit trail: a hash-chained log of signed events, mirrored into git."""


@audit.command("log")
@click.option("--model", "name", help="Only this model's events.")
def audit_log(name: str | None) -> None:
    """Every registry event, oldest first: who, when, what."""
    for ev in _models().audit_log(name):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ev.time))
        signed = "signed" if ev.body.get("signed") else "unsigned"
        click.echo(f"{ev.seq:>5} {when} {ev.kind:<16} {ev.actor:<24} {signed:<8} {_what(ev)}")


def _what(ev: Any) -> str:
    """An event's body as ``key=value`` pairs, object ids shortened."""
    parts = []
    for key, value in ev.body.items():
        if key in ("signed", "policy") or value in (None, ""):
            continue
        text = str(value)
        if text.startswith("blake3:"):
            text = text[:19] + "…"
        parts.append(f"{key}={text}")
    return " ".join(parts)


@audit.command("verify")
@click.option(
    "--full",
    is_flag=True,
    help="Check every signature again, not only those of events this machine has not verified "
    "under the same trusted keys.",
)
def audit_verify(full: bool) -> None:
    """Recompute the chain, check the signatures and the signed head; report the first broken
    link. With a root of trust, also every event the registry did not apply (unsigned, a key
    without the role, a transition no approved request stands behind) and where tether.toml
    differs from the root (a proposal: it decides nothing). Exits 1 on any problem."""
    report = _models().verify_audit(full=full)
    for problem in report.problems:
        click.secho(f"PROBLEM: {problem}", fg="red")
    for proposal in report.proposals:
        click.secho(
            f"proposal: tether.toml's {proposal} differs from the root of trust; it decides "
            "nothing until an admin signs it in (`tether trust add`, `tether trust policy`)",
            fg="yellow",
        )
    if report.unguarded:
        click.secho(
            f"note: {report.unguarded} event(s) are unsigned, and no root of trust guards this "
            "log, so nothing refuses them: anyone who can push to it can move a model. "
            "`tether trust init` makes a root",
            fg="yellow",
        )
    if not report.ok:
        raise SystemExit(exitcodes.NEGATIVE)
    head = f", head signed by {report.head_signed_by}" if report.head_signed_by else ""
    root = f", root of trust version {report.root.version}" if report.root else ""
    click.echo(f"audit log verified: {report.events} events{head}{root}")
