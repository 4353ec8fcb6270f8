"""A release on disk holds exactly its files: :func:`problems` names every file a folder has that
the signed statement does not (an injected ``modeling_evil.py``), every one it lacks and every
one that differs; :func:`fresh` and :func:`replaced` write a release into a folder that holds
nothing else, by building it beside the destination and renaming it into place, so a failure
leaves nothing half-written and no stray file survives."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tether.errors import RegistryError

MAX_NAMED = 10  # problems named one by one; the rest are counted


def problems(folder: Path, digests: Mapping[str, str]) -> list[str]:
    """What keeps ``folder`` from holding exactly ``digests`` (relative POSIX name -> sha256):
    extra files, symlinks and special files; missing files; files whose bytes differ. Nothing
    is followed out of the folder."""
    if not folder.is_dir() or folder.is_symlink():
        return [f"{folder} is not a folder"]
    found: dict[str, Path] = {}
    extra: list[str] = []
    for here, dirs, files in os.walk(folder, followlinks=False):
        base = Path(here)
        for name in sorted(dirs):
            if (base / name).is_symlink():
                extra.append(f"{_rel(folder, base / name)} (a symlink)")
        for name in sorted(files):
            path = base / name
            rel = _rel(folder, path)
            if path.is_symlink():
                extra.append(f"{rel} (a symlink)")
            elif not path.is_file():
                extra.append(f"{rel} (not a regular file)")
            elif rel in digests:
                found[rel] = path
            else:
                extra.append(rel)
    out = [f"{rel} is not one of the signed files" for rel in sorted(extra)]
    out += [f"{rel} is missing" for rel in sorted(set(digests) - set(found))]
    for rel in sorted(found):
        with open(found[rel], "rb") as f:
            now = hashlib.file_digest(f, "sha256").hexdigest()
        if now != digests[rel]:
            out.append(f"{rel} differs from what was signed (sha256 {now[:16]}…)")
    return out


def summary(found: list[str]) -> str:
    shown = found[:MAX_NAMED]
    more = len(found) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


def _rel(folder: Path, path: Path) -> str:
    return path.relative_to(folder).as_posix()


def fresh(out: Path, write: Callable[[Path], None]) -> None:
    """``write`` a release into ``out``, which must not exist or be an empty folder (whatever
    else a folder holds would sit beside the release's files, unsigned)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise RegistryError(f"{out} exists and is not a folder: name a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise RegistryError(
            f"{out} is not empty: a release is written into a fresh folder, so that it holds "
            "exactly the version's files; name a new folder or remove this one"
        )
    with _beside(out) as tmp:
        write(tmp)
        if out.is_dir():
            out.rmdir()  # empty, checked above; a file made there since makes this fail
        os.rename(tmp, out)


def replaced(out: Path, write: Callable[[Path], None]) -> None:
    """``write`` a release into a folder Tether owns (``.tether/models/NAME/vN``), replacing
    what it held: the new folder is built beside it and swapped in."""
    with _beside(out) as tmp:
        write(tmp)
        old = None
        if out.is_symlink() or out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
        os.rename(tmp, out)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


@contextmanager
def _beside(out: Path) -> Iterator[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # as mkdir would make it (mkdtemp's is 0700)
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
