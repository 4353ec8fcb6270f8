"""Rendering ``tether diff``: rich sections on a terminal, Markdown for a CI comment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.cli.tables import console, fmt_number

if TYPE_CHECKING:
    from tether.api import EnvDiff, RunDiff, Verdict


def sections(d: RunDiff) -> list[tuple[str, list[str]]]:
    """The diff as (title, lines) pairs, shared by both renderers."""
    code = _code_lines(d)
    data = []
    for ch in d.data:
        edited = " (edited, not re-added)" if ch.edited else ""
        edited += f" (missing in {' and '.join(ch.missing_in)})" if ch.missing_in else ""
        data.append(f"{ch.role} {ch.path}: {str(ch.id_a)[:19]} → {str(ch.id_b)[:19]}{edited}")
        data += [
            f"  {label}: {p}"
            for label, paths in (
                ("added", ch.added),
                ("removed", ch.removed),
                ("modified", ch.modified),
            )
            for p in paths[:10]
        ]
    e = d.env
    env = []
    if e.python:
        env.append(f"python {e.python[0]} → {e.python[1]}")
    if e.platform:
        env.append(f"platform {e.platform[0]} → {e.platform[1]}")
    env += [f"upgraded {n} {a} → {b}" for n, (a, b) in e.changed.items()]
    env += [f"added {n} {v}" for n, v in e.added.items()]
    env += [f"removed {n} {v}" for n, v in e.removed.items()]
    env += [f"lock file changed: {p}" for p in e.lock_files]
    if e.seeds:
        env.append(f"seeds {e.seeds[0]} → {e.seeds[1]}")
    env += [f"{k}: {a} → {b}" for k, (a, b) in e.determinism.items()]
    env += _var_lines(e.env_vars, "→")
    env += _name_lines(e, "A", "B")
    if e.pythonpath:
        env.append(f"PYTHONPATH {_paths(e.pythonpath[0])} → {_paths(e.pythonpath[1])}")
    params = [f"{k}: {a} → {b}" for k, (a, b) in d.params.items()]
    if d.command:
        params += [f"command in A: {shown(d.command[0])}", f"command in B: {shown(d.command[1])}"]
    if d.cwd:
        params.append(f"working folder: {folder_name(d.cwd[0])} → {folder_name(d.cwd[1])}")
    metrics = []
    for k, (a, b) in d.metrics.items():
        delta = "" if a is None or b is None else f"  ({b - a:+.6g})"
        metrics.append(f"{k}: {fmt_number(a)} → {fmt_number(b)}{delta}")
    parts = [
        ("Code", code or ["same"]),
        ("Data", data or ["same"]),
        ("Environment", env or ["same"]),
        ("Parameters", params or ["same"]),
        ("Metrics", metrics or ["none logged"]),
    ]
    if d.uncaptured:
        parts.append(("Not captured", list(d.uncaptured)))
    return [*parts, ("Likely causes", _causes(d))]


def _code_lines(d: RunDiff) -> list[str]:
    c = d.code
    code = []
    if c.commit_a != c.commit_b:
        code.append(
            f"commits {str(c.commit_a)[:10]} → {str(c.commit_b)[:10]}: "
            f"{c.behind} behind, {c.ahead} ahead"
        )
        code += [f"changed: {f}" for f in c.files[:20]] + (
            [f"… {len(c.files) - 20} more"] if len(c.files) > 20 else []
        )
    if not c.same_patch:
        code.append(f"uncommitted: A {len(c.dirty_a)} files, B {len(c.dirty_b)} files")
        code += [f"dirty in A only: {p}" for p in sorted(set(c.dirty_a) - set(c.dirty_b))]
        code += [f"dirty in B only: {p}" for p in sorted(set(c.dirty_b) - set(c.dirty_a))]
    code += c.submodules
    for path, (x, y) in c.skipped.items():
        code.append(f"untracked, too big to store: {path} {_sized(x)} → {_sized(y)}")
    return code


def _causes(d: RunDiff) -> list[str]:
    return [*_ranked(d), *(f"({note})" for note in d.notes if not d.same_run)]


def _ranked(d: RunDiff) -> list[str]:
    if d.same_run:
        return ["A and B are the same run: nothing differs"]
    if d.causes:
        return [f"{i}. {c}" for i, c in enumerate(d.causes, 1)]
    if d.results == "agree":
        agree = ["nothing captured differs, and the results (metrics and outputs) agree"]
        return agree + ["(not everything was captured: see above)"] * bool(d.uncaptured)
    if d.uncaptured:  # "nondeterminism" only when nothing could hide elsewhere
        return ["nothing captured differs, but not everything was captured (see above)"]
    if d.env.unrecorded:  # set in every run (PATH, HOME): said here, not as "not captured"
        return [
            "the four pillars match: look for nondeterminism, or for a variable set in both runs "
            f"whose value changed ({len(d.env.unrecorded)} are, and their values are recorded "
            "only when allow-listed: `runs.env_allow` in tether.toml)"
        ]
    return ["the four pillars match: look for nondeterminism"]


def shown(argv: list[str]) -> str:
    """A command line as a shell would take it."""
    import shlex

    return shlex.join(argv) if argv else "(none recorded)"


def folder_name(rel: str | None) -> str:
    return "(outside the repository)" if rel is None else ("the top" if rel == "." else rel)


def _paths(entries: list[str]) -> str:
    return ":".join(entries) or "(unset)"


def _var_lines(changed: dict[str, tuple[str | None, str | None]], arrow: str) -> list[str]:
    """Allow-listed environment variables that differ, as ``NAME=value``."""
    return [
        f"{name}{'=' + repr(a) if a is not None else ' unset'} {arrow} "
        f"{name}{'=' + repr(b) if b is not None else ' unset'}"
        for name, (a, b) in changed.items()
    ]


def _name_lines(e: EnvDiff, a: str, b: str) -> list[str]:
    """Variables outside the allow-list set in one run only (their values are never recorded)."""
    return [
        f"variables set in {side} only: {_listed(names)}"
        for side, names in ((a, e.names_a), (b, e.names_b))
        if names
    ]


def _listed(names: list[str], most: int = 8) -> str:
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _sized(info: dict[str, Any] | None) -> str:
    if not info:
        return "(absent)"
    if info.get("in_diff"):
        size = f"{info['size']} bytes " if info.get("size") is not None else ""
        return f"{size}(stored in the diff: the size limit was higher)"
    return f"{info.get('size')} bytes {str(info.get('id'))[:19]}"


def show(d: RunDiff) -> None:
    out = console()
    out.print(f"[bold]A[/] {d.a['name']} {d.a['id']}\n[bold]B[/] {d.b['name']} {d.b['id']}")
    for title, lines in sections(d):
        out.print(f"\n[bold underline]{title}[/]")
        for line in lines:
            out.print(f"  {line}", markup=False) if line != "same" else out.print("  [dim]same[/]")


def markdown(d: RunDiff) -> str:
    parts = [f"### Why `{d.a['name']}` and `{d.b['name']}` differ\n"]
    for title, lines in sections(d):
        parts.append(f"**{title}**\n")
        numbered = bool(lines) and lines[0].startswith("1. ")  # the ranked causes
        parts += [line if numbered else f"- {line}" for line in lines]
        parts.append("")
    return "\n".join(parts)


def show_verdict(v: Verdict) -> None:
    out = console()
    colour = {"REPRODUCED": "green", "DIFFERENT": "yellow", "FAILED": "red"}[v.verdict]
    out.print(
        f"[bold {colour}]{v.verdict}[/]  run {v.run}"
        + (f" -> {v.reproduction}" if v.reproduction else "")
    )
    if v.reason:
        out.print(f"  {v.reason}", markup=False)
    if v.worktree:
        out.print(f"  worktree kept at {v.worktree}", markup=False)
    if v.withheld:  # names only, never values
        names = ", ".join(v.withheld)
        out.print(f"  withheld from the re-run: {names} (--pass-env NAME gives one)", markup=False)
    if v.drift is not None:
        e = v.drift
        drift = [f"python {e.python[0]} -> {e.python[1]}"] if e.python else []
        drift += [f"{n} {a} -> {b}" for n, (a, b) in e.changed.items()]
        drift += [f"+{n} {ver}" for n, ver in e.added.items()] + [
            f"-{n} {ver}" for n, ver in e.removed.items()
        ]
        drift += [f"{k}: {a} -> {b}" for k, (a, b) in e.determinism.items()]
        drift += _var_lines(e.env_vars, "->")
        drift += _name_lines(e, "the original", "the re-run")
        if e.pythonpath:
            drift.append(f"PYTHONPATH {_paths(e.pythonpath[0])} -> {_paths(e.pythonpath[1])}")
        out.print("\n[bold underline]Environment drift[/]")
        for line in drift or ["none"]:
            out.print(f"  {line}", markup=False)
    if v.outputs:
        out.print("\n[bold underline]Outputs[/]")
        for o in v.outputs:
            mark = (
                "same"
                if o.original == o.now
                else (
                    "differs" if o.mode == "exact" else f"differs ({o.mode}: not judged by bytes)"
                )
            )
            out.print(f"  {o.path}: {mark}", markup=False)
    if v.metrics:
        out.print("\n[bold underline]Metrics[/]")
        for m in v.metrics:
            tol = f" (tolerance {m.tolerance:g})" if m.tolerance else ""
            state = "ok" if m.ok else "MOVED"
            line = f"  {m.key}: {fmt_number(m.original)} -> {fmt_number(m.now)}{tol} {state}"
            out.print(line, markup=False)
    if v.explanation is not None:
        out.print("\n[bold underline]Why[/]")
        explained = dict(sections(v.explanation))
        for line in [*explained.get("Not captured", []), *explained["Likely causes"]]:
            out.print(f"  {line}", markup=False)
