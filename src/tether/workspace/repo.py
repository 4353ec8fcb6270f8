"""A Tether workspace: a git work tree with ``tether.toml`` and a ``.tether/`` folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath

from tether._fs import atomic_write, resolve_inside, resolved_dir
from tether.config import PROJECT_FILE, Config, truthy
from tether.errors import NotARepositoryError, PathError, PointerError, TetherError
from tether.gitio.repo import DOT, ensure_ignored, find_root, pointer_files
from tether.objects.lock import file_lock
from tether.objects.refs import RefStore
from tether.objects.store import ObjectStore
from tether.workspace.pointer import PointerFile, read_pointer, target_of
from tether.workspace.statcache import StatCache

SHARED_BYTES = ("hardlink", "symlink")  # link modes whose working file is the cache's object


@dataclass
class Tracked:
    """One pointer file and what it tracks."""

    pointer: str  # repository-relative path of the pointer file
    target: str  # repository-relative path of the tracked file/folder
    ptr: PointerFile


@dataclass
class Workspace:
    root: Path
    _pointers: list[Tracked] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, start: Path | None = None) -> Workspace:
        root = find_root(start)
        if not (root / PROJECT_FILE).exists():
            raise NotARepositoryError(
                f"{root} is a git repository but not a Tether project: run `tether init` there"
            )
        ws = cls(root)
        if (ws.dot / "objects").is_dir():
            ws.store.check_format()
        else:  # a fresh clone: .tether/ is git-ignored, so it starts empty
            ws.store.create()
        return ws

    @classmethod
    def init(cls, root: Path) -> Workspace:
        ws = cls(root)
        if not (root / PROJECT_FILE).exists():
            atomic_write(
                root / PROJECT_FILE,
                b"# Tether project settings (committed: never put credentials here;\n"
                b"# use `tether config set KEY VALUE --local` or TETHER_* variables).\n"
                b'format = 1\n\n[cache]\nlink = "reflink,copy"\n',
            )
        ws.store.create()
        ensure_ignored(root, f"{DOT}/")
        return ws

    # -- parts -----------------------------------------------------------------------------
    @property
    def dot(self) -> Path:
        return self.root / DOT

    @cached_property
    def config(self) -> Config:
        return Config.load(self.root)

    @cached_property
    def store(self) -> ObjectStore:
        return ObjectStore(self.dot)

    @cached_property
    def cache_dir(self) -> str:
        """Where symlink link mode points (as the real path scan compares against)."""
        return os.path.realpath(self.store.objects)

    @cached_property
    def refs(self) -> RefStore:
        return RefStore(self.dot / "refs")

    @cached_property
    def statcache(self) -> StatCache:
        self.dot.mkdir(exist_ok=True)
        return StatCache(self.statcache_path)

    @property
    def statcache_path(self) -> Path:
        """``.tether/state.db``. A linked git worktree whose ``.tether`` is a link to another's
        (a reproduction's) keeps one of its own, named by its path: rows are keyed by path, and
        two work trees sharing one ``.tether`` have different files at the same paths."""
        if not (self.dot.is_symlink() and (self.root / ".git").is_file()):
            return self.dot / "state.db"
        tag = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        return self.dot / f"state-{tag}.db"

    def close(self) -> None:
        cache = self.__dict__.pop("statcache", None)
        if cache is not None:
            cache.close()
        store = self.__dict__.get("store")
        if store is not None:
            store.close()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Held (shared) by everything that adds objects; gc holds it exclusively."""
        with file_lock(self.dot / "locks" / "store.lock", exclusive=False):
            yield

    @contextmanager
    def deleting(self) -> Iterator[None]:
        with file_lock(self.dot / "locks" / "store.lock", exclusive=True):
            yield

    def jobs(self) -> int:
        configured = int(self.config.get("cache.jobs") or 0)
        return configured or min(32, (os.cpu_count() or 1) * 4)

    # -- links into the cache --------------------------------------------------------------
    def link_modes(self) -> tuple[str, ...]:
        """How files go between the working tree and the cache: ``cache.link``, except that as
        root the modes that share the cache's bytes (hardlink, symlink) are left out. Their
        read-only mode is what stops an edit (``echo x >> data/a.csv``) from changing the cache's
        only copy, and root writes through it; reflink and copy keep the two apart."""
        configured = self.config.link_modes()
        if not self._links_unguarded(configured):
            return configured
        return tuple(m for m in configured if m not in SHARED_BYTES) or ("reflink", "copy")

    def link_notice(self) -> str | None:
        """Why :meth:`link_modes` differs from ``cache.link``, for the user; None when not."""
        configured = self.config.link_modes()
        if not self._links_unguarded(configured):
            return None
        shared = " and ".join(m for m in configured if m in SHARED_BYTES)
        return (
            f"cache.link {shared} is not used when running as root: root writes through the "
            "read-only mode that protects the cache, so editing a linked file would change the "
            "cache's only copy. Files are copied instead (reflinked where the filesystem can), "
            "and `tether checkout` turns files linked earlier into copies. Set "
            "cache.link_as_root = true to link anyway"
        )

    def _links_unguarded(self, modes: tuple[str, ...]) -> bool:
        return (
            any(m in SHARED_BYTES for m in modes)
            and os.geteuid() == 0
            and not truthy(self.config.get("cache.link_as_root"))
        )

    # -- paths -----------------------------------------------------------------------------
    def rel(self, path: str | os.PathLike[str]) -> str:
        """Repository-relative POSIX path of a user-given path; refuses escapes."""
        resolved = resolve_inside(self.root, path)
        rel = resolved.relative_to(resolved_dir(self.root)).as_posix()
        if rel == "." or rel == DOT or rel.startswith(DOT + "/") or rel == ".git":
            top = rel.split("/")[0]
            what = top if rel == top else f"inside {top}"
            what = "the repository itself" if rel == "." else what
            raise PathError(
                f"{path} is {what}, which Tether (.tether) or git (.git) keeps for itself: "
                "name a file or folder of your own data"
            )
        return rel

    def abs(self, rel: str) -> Path:
        return self.root / PurePosixPath(rel)

    # -- pointers --------------------------------------------------------------------------
    def pointers(self) -> list[Tracked]:
        """Every pointer in the working tree; one that cannot be read raises."""
        if self._pointers is None:
            self._pointers = self._read_pointers(strict=True)
        return self._pointers

    def readable_pointers(
        self, listing: list[str] | None = None, refused: dict[str, TetherError] | None = None
    ) -> list[Tracked]:
        """Like :meth:`pointers`, skipping pointer files that cannot be read (each one's error
        goes to ``refused``, by the pointer's path, when it is given). ``listing`` is the
        pointer files' paths when the caller already asked git for them."""
        return self._read_pointers(strict=False, listing=listing, refused=refused)

    def _read_pointers(
        self,
        *,
        strict: bool,
        listing: list[str] | None = None,
        refused: dict[str, TetherError] | None = None,
    ) -> list[Tracked]:
        out = []
        for rel in pointer_files(self.root) if listing is None else listing:
            if not (self.root / rel).is_file():
                continue  # listed by git but deleted from the working tree
            try:
                ptr = read_pointer(self.root, rel)
            except PointerError as exc:
                if strict:
                    raise
                if refused is not None:
                    refused[rel] = exc
                continue
            out.append(Tracked(rel, target_of(rel, ptr), ptr))
        return out

    def forget_pointers(self) -> None:
        self._pointers = None

    def select(
        self, paths: list[str] | None, refused: dict[str, TetherError] | None = None
    ) -> list[tuple[Tracked, str]]:
        """Pointers matching user paths, each with the sub-path inside it ("" for all of it).
        A pointer file that cannot be read raises, unless ``refused`` is given: then it is left
        out and its error added there (a checkout carries on with the others), when it is one
        of the paths asked for (or all are)."""
        errors: dict[str, TetherError] = {}
        tracked = self.pointers() if refused is None else self.readable_pointers(refused=errors)
        if not paths:
            if refused is not None:
                refused.update(errors)
            return [(t, "") for t in tracked]
        out: list[tuple[Tracked, str]] = []
        for raw in paths:
            rel = self.rel_lexical(raw)
            hits = [(t, _sub(t.pointer, t.target, rel)) for t in tracked]
            found = [(t, s) for t, s in hits if s is not None]
            bad = {p: e for p, e in errors.items() if _sub(p, target_of(p), rel) is not None}
            if not found and not bad:
                raise PointerError(
                    f"{raw} is not tracked by Tether: `tether status` lists what is "
                    "(add it with `tether add`)"
                )
            if refused is not None:
                refused.update(bad)
            out.extend((t, s) for t, s in found if s is not None)
        return out

    def rel_lexical(self, path: str) -> str:
        """Like :meth:`rel` but for paths that may not exist yet (a deleted tracked file)."""
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = Path.cwd() / candidate
        parent = resolve_inside(self.root, candidate.parent)
        rel = (parent / candidate.name).relative_to(self.root.resolve()).as_posix()
        return "" if rel == "." else rel


def _sub(pointer: str, target: str, rel: str) -> str | None:
    if rel in (target, pointer):
        return ""
    if rel.startswith(target + "/"):
        return rel[len(target) + 1 :]
    return None
