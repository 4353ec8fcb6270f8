"""A no-op ``tether repro`` answered from stat calls.

When a plan finds the whole pipeline up to date, :func:`remember` keeps what it looked at: for
every file it read or hashed (``pipeline.yaml``, ``pipeline.lock``, params files, deps, outs) the
``lstat`` signature taken *before* reading it and the content id of what it read, and for folders
the signature of every file and folder inside. The next ``tether repro`` calls :func:`still_fresh`:
when every signature is unchanged, nothing the plan would read has changed and the answer is the
same, so it says so without parsing YAML or loading the workspace.

Like git's index, a file changed twice within one clock tick can keep its mtime: a file whose
mtime is that close to the moment the plan began is *racy*: its content is hashed again (for a
folder, its listing is compared) instead of trusted.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

STATE_FILE = "repro-state.json"  # in .tether/cache: local, never committed
FORMAT = 1
RACY_NS = 20_000_000  # mtime within this of the plan's start (2 coarse clock ticks): racy

Sig = list[int]


def _sig(st: os.stat_result) -> Sig:
    return [st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode]


class Seen:
    """What one plan looked at: ``files`` rel -> (signature, content id or None inside a folder);
    ``usable`` turns False at the first thing this fast path does not cover (a symlink)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.began = time.time_ns()
        self.files: dict[str, tuple[Sig, str | None]] = {}
        self.usable = True

    def read(self, rel: str) -> bytes | None:
        """The bytes of ``rel`` (None when it does not exist), noted with their id."""
        from tether.hashing import hash_bytes

        path = self.root / rel
        try:
            st = path.lstat()
            data = path.read_bytes()
        except FileNotFoundError:
            self.usable = False  # a plan that fails or a file that appears: not this path
            return None
        self._note(rel, st, hash_bytes(data))
        return data

    def note_path(self, rel: str) -> None:
        """Take the signature of ``rel`` (and of all inside it) before its content id is
        computed; :meth:`found` adds the id."""
        path = self.root / rel
        try:
            st = path.lstat()
        except FileNotFoundError:
            self.usable = False
            return
        if stat.S_ISDIR(st.st_mode):
            for folder, dirs, files in os.walk(path):
                base = Path(folder)
                key = base.relative_to(self.root).as_posix() + "/"
                self._note(key, base.lstat() if base != path else st, _listing(base))
                if any((base / name).is_symlink() for name in dirs):
                    self.usable = False  # os.walk does not follow it: its content goes unseen
                for name in files:
                    child = base / name
                    st_child = child.lstat()
                    self._note(
                        child.relative_to(self.root).as_posix(),
                        st_child,
                        self._racy(child, st_child),
                    )
        else:
            self._note(rel, st, None)

    def _racy(self, path: Path, st: os.stat_result) -> str | None:
        """The content id of a file inside a folder whose mtime is racy (just written, as a
        stage's out often is), so the check can hash it instead of giving up; None otherwise."""
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns < self.began - RACY_NS:
            return None
        from tether.hashing import hash_file

        return hash_file(path)

    def found(self, rel: str, oid: str | None) -> None:
        entry = self.files.get(rel)
        if entry is not None and oid is not None:
            self.files[rel] = (entry[0], oid)

    def _note(self, rel: str, st: os.stat_result, oid: str | None) -> None:
        if stat.S_ISLNK(st.st_mode):
            self.usable = False
        self.files.setdefault(rel, (_sig(st), oid))


def _listing(folder: Path) -> str:
    """A folder's entry names, as an id (what a racy folder is checked by)."""
    from tether.hashing import hash_bytes

    return "listing:" + hash_bytes("\0".join(sorted(os.listdir(folder))).encode())


def remember(dot: Path, seen: Seen, version: str) -> None:
    """Keep ``seen`` as the state of an up-to-date pipeline (a failed write only costs speed)."""
    if not seen.usable:
        forget(dot)
        return
    from tether._fs import write_cache

    doc = {"format": FORMAT, "tether": version, "began": seen.began, "files": seen.files}
    write_cache(dot / "cache" / STATE_FILE, json.dumps(doc).encode())


def forget(dot: Path) -> None:
    (dot / "cache" / STATE_FILE).unlink(missing_ok=True)


def fresh_here(version: str) -> bool:
    """:func:`still_fresh` for the repository holding the working directory (False outside one),
    with the running Tether's ``version`` (a state another version wrote is not trusted)."""
    from tether.errors import NotARepositoryError
    from tether.gitio.repo import DOT, find_root

    try:
        root = find_root()
    except NotARepositoryError:
        return False
    return still_fresh(root, root / DOT, version)


def still_fresh(root: Path, dot: Path, version: str) -> bool:
    """True when nothing the last up-to-date plan read has changed since."""
    try:
        doc: dict[str, Any] = json.loads((dot / "cache" / STATE_FILE).read_bytes())
        if doc.get("format") != FORMAT or doc.get("tether") != version:
            return False
        began, files = int(doc["began"]), doc["files"]
        for rel, (sig, oid) in files.items():
            path = root / rel.rstrip("/")
            now = _sig(path.lstat())
            racy = sig[0] >= began - RACY_NS
            if now == sig and not racy:
                continue
            if stat.S_ISDIR(now[4]) and now[3:] == sig[3:]:
                if _listing(path) != oid:
                    return False
                continue
            if now[2:] != sig[2:] or oid is None or not stat.S_ISREG(now[4]):
                return False  # other size, inode or kind, or a file in a folder changed
            from tether.hashing import hash_file

            if hash_file(path) != oid:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True
