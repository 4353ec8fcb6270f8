"""Writing prompt versions and reading them side by side: ``prompt new`` (a starting version),
``prompt bump`` (the next version of one), ``prompt diff`` and ``prompt lint``."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path
from typing import Any

from tether._documents import dump_yaml
from tether.prompts.templates import (
    CHAT_FILE,
    META_FILE,
    PROMPTS_DIR,
    TEXT_FILE,
    Prompt,
    PromptError,
    Variable,
    _a,
    _is_type,
    load,
    parse_ref,
    version_key,
    versions,
)

# -- making versions -----------------------------------------------------------------------
SCAFFOLD_META = {
    "description": "What this prompt is for",
    "variables": {"text": {"type": "string", "required": True}},
    "params": {"temperature": 0},
    "output": {"format": "text"},
}
SCAFFOLD_TEMPLATE = "Answer in one sentence.\n\n{{ text }}\n"
SCAFFOLD_MODEL = (
    "# model: gpt-4o-mini   # when set, this model is sent to every provider in place of its own\n"
)


def new(root: Path, name: str, *, chat: bool = False) -> Prompt:
    """``prompts/NAME/v1.0.0/`` with a starting ``prompt.yaml`` and template."""
    parse_ref(name)
    if versions(root, name):
        raise PromptError(f"prompt {name} exists: `tether prompt bump {name}` makes a new version")
    folder = root / PROMPTS_DIR / name / "v1.0.0"
    folder.mkdir(parents=True)
    (folder / META_FILE).write_text(dump_yaml(SCAFFOLD_META, sort_keys=False) + SCAFFOLD_MODEL)
    if chat:
        messages = [
            {"role": "system", "content": "You are a careful assistant."},
            {"role": "user", "content": SCAFFOLD_TEMPLATE},
        ]
        (folder / CHAT_FILE).write_text(dump_yaml(messages, sort_keys=False))
    else:
        (folder / TEXT_FILE).write_text(SCAFFOLD_TEMPLATE)
    return load(root, name, "v1.0.0")


def bump(
    root: Path, name: str, part: str, base: str | None = None, *, taken: set[str] | None = None
) -> Prompt:
    """A copy of ``base`` (default: the newest version) under its next ``major``, ``minor`` or
    ``patch`` version: ``--from v1.0.0 --patch`` is the hotfix v1.0.1 of a version in use."""
    latest = load(root, name, base)
    major, minor, patch = version_key(latest.version)
    nxt = {
        "major": (major + 1, 0, 0),
        "minor": (major, minor + 1, 0),
        "patch": (major, minor, patch + 1),
    }[part]
    version = "v{}.{}.{}".format(*nxt)
    target = latest.folder.parent / version
    if version in (taken or set()):
        raise PromptError(
            f"{name}@{version} is registered already (its tag exists, perhaps from another "
            f"branch): bump another part of {latest.version}, or `git fetch --tags` to see it"
        )
    if target.exists():
        raise PromptError(
            f"{name}@{version} exists already: bump another part of {latest.version} "
            f"(--patch for a fix of it) or edit {version}"
        )
    shutil.copytree(latest.folder, target)
    return load(root, name, version)


# -- comparing -----------------------------------------------------------------------------
def diff(a: Prompt, b: Prompt) -> str:
    """Variable changes, then a unified diff of every file that differs."""
    lines = []
    for name in sorted(set(a.variables) | set(b.variables)):
        old, now = a.variables.get(name), b.variables.get(name)
        if old is None:
            lines.append(f"+ variable {name} ({_describe(now)})")
        elif now is None:
            lines.append(f"- variable {name} ({_describe(old)})")
        elif old != now:
            lines.append(f"~ variable {name}: {_describe(old)} -> {_describe(now)}")
    for file in sorted(set(a.files) | set(b.files)):
        left = a.files.get(file, b"").decode("utf-8", "replace").splitlines(keepends=True)
        right = b.files.get(file, b"").decode("utf-8", "replace").splitlines(keepends=True)
        lines += [
            line.rstrip("\n")
            for line in difflib.unified_diff(
                left, right, f"{a.ref}/{file}", f"{b.ref}/{file}", lineterm="\n"
            )
        ]
    return "\n".join(lines)


def _describe(var: Variable | None) -> str:
    if var is None:
        return "-"
    how = "required" if var.required else f"default {var.default!r}"
    return f"{var.type}, {how}"


def lint(
    prompt: Prompt, suite_vars: list[tuple[dict[str, Any], frozenset[str]]] | None = None
) -> list[str]:
    """Problems a reviewer would flag: variables used but not declared, declared but unused,
    and (given a suite's cases, each with the names it gave as text) a required variable some
    case does not provide or gives as the wrong type, checked as an eval binds it."""
    used = prompt.used_variables()
    problems = [
        f"{prompt.ref}: the template uses {name!r}, which prompt.yaml does not declare"
        for name in sorted(used - set(prompt.variables))
    ]
    problems += [
        f"{prompt.ref}: variable {name!r} is declared but no template uses it"
        for name in sorted(set(prompt.variables) - used)
    ]
    for i, (case, text) in enumerate(suite_vars or []):
        try:
            given = prompt.typed(case, text)
        except PromptError as exc:
            problems.append(f"suite case {i + 1}: {exc}")
            continue
        missing = [v.name for v in prompt.variables.values() if v.required and v.name not in given]
        if missing:
            problems.append(f"{prompt.ref}: suite case {i + 1} does not give {', '.join(missing)}")
        problems += [
            f"{prompt.ref}: suite case {i + 1}: variable {v.name} must be {_a(v.type)}, "
            f"not {type(given[v.name]).__name__} ({given[v.name]!r:.60})"
            for v in prompt.variables.values()
            if v.name in given and not _is_type(given[v.name], v.type)
        ]
    return problems
