"""Git, through the ``git`` command: finding the repository, pointer files at any revision,
``.gitignore`` lines."""

from tether.gitio.repo import (
    all_pointer_blobs,
    ensure_ignored,
    find_root,
    git,
    git_many,
    git_maybe,
    init_repo,
    parse_pointer_listing,
    pointer_files,
    show,
)

__all__ = [
    "all_pointer_blobs",
    "ensure_ignored",
    "find_root",
    "git",
    "git_many",
    "git_maybe",
    "init_repo",
    "parse_pointer_listing",
    "pointer_files",
    "show",
]
