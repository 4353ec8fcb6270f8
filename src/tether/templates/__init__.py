"""The project template ``tether new`` lays out, in the spirit of Cookiecutter Data Science.

Files under ``project/`` are copied with ``{{ project }}`` replaced by the project's name and
``{{ package }}`` by its Python package name; ``__package__`` in a path becomes the package name.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from tether._fs import atomic_write


def package_name(project: str) -> str:
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", project).strip("_").lower() or "project"
    return f"p_{name}" if name[0].isdigit() else name


def render_project(target: Path, project: str) -> list[Path]:
    package = package_name(project)
    written: list[Path] = []

    def copy(node: Traversable, dest: Path) -> None:
        for child in node.iterdir():
            name = child.name.replace("__package__", package)
            name = ".gitignore" if name == "gitignore.txt" else name  # dotfiles travel badly
            if child.is_dir():
                (dest / name).mkdir(parents=True, exist_ok=True)
                copy(child, dest / name)
            else:
                text = child.read_text()
                text = text.replace("{{ project }}", project).replace("{{ package }}", package)
                atomic_write(dest / name, text.encode(), durable=False)
                written.append(dest / name)

    target.mkdir(parents=True)
    copy(resources.files(__package__).joinpath("project"), target)
    for empty in ("data/raw", "data/processed"):  # kept empty so `tether add` tracks only data
        (target / empty).mkdir(parents=True, exist_ok=True)
    return written


CI_FILES = {"github": ".github/workflows/tether.yml", "gitlab": ".gitlab-ci.yml"}


def write_ci(root: Path, kind: str) -> Path:
    """The CI workflow for ``kind`` (github, gitlab); an existing file is left alone."""
    from tether.errors import UsageError

    if kind not in CI_FILES:
        raise UsageError(f"--ci takes one of {', '.join(CI_FILES)}, not {kind!r}")
    dest = root / CI_FILES[kind]
    if dest.exists():
        raise UsageError(f"{dest.relative_to(root)} exists already: merge the Tether steps by hand")
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = resources.files(__package__).joinpath("ci", f"{kind}.yml").read_text()
    atomic_write(dest, text.encode())
    return dest
