"""One namespace for prompt and model names, as GTO keeps one namespace of artifact names: both
are git tags (``NAME@vX.Y.Z`` and ``NAME#LABEL#N`` for a prompt, ``NAME@vN`` and
``NAME#STAGE#N`` for a model), so a prompt and a model called the same would overwrite each
other's tags. Creating the second is refused; a clash made before (or in another clone) is
reported by ``tether audit verify``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from tether.errors import PromptError, RegistryError
from tether.gitio.repo import git_maybe
from tether.workspace.repo import Workspace

_PROMPT_TAG = re.compile(r"^(?P<name>[^@#]+)@v\d+\.\d+\.\d+$")
_MODEL_TAG = re.compile(r"^(?P<name>[^@#]+)@v\d+$")


def _tagged(root: Path, pattern: re.Pattern[str]) -> set[str]:
    out = git_maybe(root, "for-each-ref", "--format=%(refname:strip=2)", "refs/tags/*@v*") or b""
    return {m["name"] for t in out.decode().split() if (m := pattern.match(t))}


def prompt_names(root: Path) -> set[str]:
    """Prompts with files in this tree, or registered (a version tag)."""
    from tether.prompts.templates import names

    return set(names(root)) | _tagged(root, _PROMPT_TAG)


def model_names(ws: Workspace) -> set[str]:
    """Models registered in the log, or tagged in git (a clone whose log is not pulled yet)."""
    from tether.registry.store import load_state

    return set(load_state(ws).models) | _tagged(ws.root, _MODEL_TAG)


def claim_model(ws: Workspace, name: str) -> None:
    if name in prompt_names(ws.root):
        raise RegistryError(
            f"{name} is a prompt in this repository: a prompt and a model cannot share a name "
            f"(their git tags would collide); register the model under another name"
        )


def claim_prompt(root: Path, ws: Workspace | None, name: str) -> None:
    taken = model_names(ws) if ws is not None else _tagged(root, _MODEL_TAG)
    if name in taken:
        raise PromptError(
            f"{name} is a registered model in this repository: a prompt and a model cannot "
            "share a name (their git tags would collide); choose another name"
        )


def clashes(ws: Workspace, models: Iterable[str] | None = None) -> list[str]:
    """Names that are both a prompt and a model (made before this check, or in two clones);
    ``models``: the registered ones, when the caller has folded the log already."""
    registered = model_names(ws) if models is None else set(models) | _tagged(ws.root, _MODEL_TAG)
    both = prompt_names(ws.root) & registered
    return [
        f"{name} is both a prompt and a model: their tags collide; rename one (register the "
        "model under a new name, or copy the prompt to a new name)"
        for name in sorted(both)
    ]
