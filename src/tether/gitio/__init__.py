"""Git, through the ``git`` command: finding the repository, pointer files at any revision,
``.gitignore`` lines."""

from tether.gitio.repo import (
    all_pointer_blobs,
    ensure_ignored,
    find_root,
    git,
    git_many,
    git_maybe,
    in_repository,
    init_repo,
    is_commit,
    parse_pointer_listing,
    pointer_files,
    read_blob,
    show,
)

__all__ = [
    "all_pointer_blobs",
    "ensure_ignored",
    "find_root",
    "git",
    "git_many",
    "git_maybe",
    "in_repository",
    "init_repo",
    "is_commit",
    "parse_pointer_listing",
    "pointer_files",
    "read_blob",
    "show",
]
