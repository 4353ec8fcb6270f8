"""Reading content someone else wrote (a prompt's files, a suite, a promptfoo configuration):
a path must stay inside the repository and out of ``.git`` and ``.tether``, and YAML must parse
into a document of bounded size."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tether._documents import load_yaml
from tether.errors import PromptError


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved (symlinks followed), refused unless it is a file or folder inside
    ``root`` and outside its ``.git`` and ``.tether``; ``what`` names it in the message."""
    top = root.resolve()
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise PromptError(f"{what}: {path} does not exist") from None
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise PromptError(f"{what}: {path} cannot be read ({exc})") from None
    via = " (through a symlink)" if resolved != Path(os.path.abspath(path)) else ""
    if resolved != top and top not in resolved.parents:
        raise PromptError(
            f"{what} is {resolved}{via}, outside the repository {top}: content a pull request "
            "can change reads only files inside the repository"
        )
    parts = resolved.relative_to(top).parts
    if any(part.casefold().rstrip(". ") in (".git", ".tether") for part in parts):
        raise PromptError(
            f"{what} is {resolved}{via}, inside {parts[0]}: git's and Tether's own folders "
            "(local config, credentials) are not content a prompt or suite may read"
        )
    if not (resolved.is_file() or resolved.is_dir()):
        raise PromptError(f"{what} is {resolved}, which is not a regular file")
    return resolved


def read_yaml(data: bytes, what: str) -> Any:
    """A YAML document from content (a prompt's files, a suite): a clear ``PromptError`` for
    anything ``yaml.safe_load`` cannot take, or a document whose aliases expand past
    ``MAX_EXPANDED`` values (a "billion laughs")."""
    import yaml

    try:
        doc = load_yaml(data)
    except yaml.YAMLError as exc:
        raise PromptError(f"{what} is not valid YAML ({exc})") from None
    except (ValueError, OverflowError) as exc:  # a date like 2024-13-45
        raise PromptError(f"{what} holds a value YAML cannot read ({exc})") from None
    except RecursionError:
        raise PromptError(f"{what} nests too deeply") from None
    _check_expansion(doc, what)
    return doc


MAX_EXPANDED = 1_000_000


def _check_expansion(doc: Any, what: str) -> None:
    """Refuse a document that, with its aliases expanded, holds more than ``MAX_EXPANDED``
    values: rendering or printing one would never end."""
    stack, seen = [doc], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_EXPANDED:
            raise PromptError(
                f"{what} expands to more than {MAX_EXPANDED:,} values (YAML aliases repeating "
                "a value): write the values out"
            )
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
