"""What the web UI reads of a project's repository on the server (its git mirror): the
registry's and prompt labels' logs, each checked and folded; the registered prompt versions
and the diff of two; the tracked data at a revision and what changed against another."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.errors import MissingOnServerError, TetherError
from tether.team.views import _Objects

if TYPE_CHECKING:
    from tether.team.hub import Hub


def governance(hub: Hub, project: str, log: str) -> dict[str, Any]:
    """The registry's (``log="registry"``) or the prompt labels' (``"prompts"``) state as the
    project's repository on the server holds its log: every event checked against its id and
    linked to its parents as it is read (``problem``: what did not check), then folded, each
    refused event named (``refused``)."""
    from tether.events.gitmirror import read_from_git

    root = hub.mirrors.path(project)
    try:
        events = read_from_git(root, log) if root.exists() else []
    except TetherError as exc:
        return {"events": [], "state": None, "refused": [], "problem": str(exc)}
    if log == "registry":
        from tether.registry.fold import fold
        from tether.registry.state import State

        state: Any = fold(State(), events)
        refused = [str(r) for r in state.refused]
    else:
        from tether.prompts.label_log import fold as fold_prompts

        state = fold_prompts(events)
        refused = [f"{r.seq} {r.kind} by {r.actor}: {r.why}" for r in state.refusals]
    return {"events": events, "state": state, "refused": refused, "problem": None}


def prompt_versions(hub: Hub, project: str) -> dict[str, list[str]]:
    """Each prompt's registered versions (its ``NAME@vX.Y.Z`` tags in the project's
    repository on the server), oldest first."""
    import re
    import subprocess

    root = hub.mirrors.path(project)
    if not root.exists():
        return {}
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:strip=2)", "refs/tags/*@v*"],
        cwd=root, capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    found: dict[str, list[tuple[int, ...]]] = {}
    for tag in out.split():
        m = re.fullmatch(r"(?P<name>[^@#]+)@v(?P<v>\d+\.\d+\.\d+)", tag)
        if m:
            found.setdefault(m["name"], []).append(tuple(int(x) for x in m["v"].split(".")))
    return {
        name: [f"v{'.'.join(map(str, v))}" for v in sorted(vs)]
        for name, vs in sorted(found.items())
    }


PROMPT_VERSION = r"v\d+\.\d+\.\d+"


def prompt_diff(hub: Hub, project: str, name: str, a: str, b: str) -> str:
    """The unified diff of two registered versions of a prompt: each version's folder
    (``prompts/NAME/vX.Y.Z``) at its registration tag in the project's repository on the
    server."""
    import re
    import subprocess

    from tether.errors import PromptError, UsageError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise UsageError(f"{name[:100]!r} is not a prompt name")
    for v in (a, b):
        if not re.fullmatch(PROMPT_VERSION, v):
            raise UsageError(f"{v[:40]!r} is not a version (vX.Y.Z)")
    known = prompt_versions(hub, project).get(name, [])
    for v in (a, b):
        if v not in known:
            raise MissingOnServerError(
                f"{name}@{v} is not registered on the server (versions: "
                f"{', '.join(known) or 'none'})"
            )
    done = subprocess.run(
        ["git", "diff", "--no-color", "--no-ext-diff", f"refs/tags/{name}@{a}:prompts/{name}/{a}",
         f"refs/tags/{name}@{b}:prompts/{name}/{b}"],
        cwd=hub.mirrors.path(project), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise PromptError(f"cannot diff {name}@{a} and {name}@{b}: {done.stderr.strip()[:300]}")
    return done.stdout


def data_page(hub: Hub, project: str, rev: str | None, against: str | None) -> dict[str, Any]:
    """The tracked data at ``rev`` of the project's repository on the server (its pointer
    files), the revisions there are to pick from, and with ``against`` what changed: each path
    added, removed or changed, and for a folder whose manifests the server holds, its files."""
    import subprocess

    from tether.objects.tree import diff_trees

    root = hub.mirrors.path(project)
    refs = subprocess.run(
        ["git", "for-each-ref", "--sort=-creatordate", "--format=%(refname:short)",
         "refs/heads", "refs/tags"],
        cwd=root, capture_output=True, text=True, check=False,
    ).stdout.split() if root.exists() else []  # fmt: skip
    out: dict[str, Any] = {"refs": refs[:200], "rev": rev, "against": against}
    if not rev:
        return out
    out["commit"] = hub.mirrors.commit(project, rev)
    out["data"] = hub.mirrors.data_at(project, rev)
    if not against:
        return out
    old = {d["path"]: d for d in hub.mirrors.data_at(project, against) if "path" in d}
    new = {d["path"]: d for d in out["data"] if "path" in d}
    changes: list[dict[str, Any]] = []
    store = _Objects(hub, project)
    for path in sorted(old.keys() | new.keys()):
        a, b = old.get(path), new.get(path)
        if a is not None and b is not None and a["id"] == b["id"]:
            continue
        change: dict[str, Any] = {"path": path, "a": a, "b": b, "files": None}
        if a and b and a["kind"] == b["kind"] == "dir":
            try:
                d = diff_trees(store.load_tree(a["id"]), store.load_tree(b["id"]))
                change["files"] = d
            except (FileNotFoundError, TetherError):
                pass  # the manifests are not on the server: the ids still say it changed
        changes.append(change)
    out["changes"] = changes
    return out
