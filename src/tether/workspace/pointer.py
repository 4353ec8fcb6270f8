"""Pointer files: ``data.tether`` beside ``data/`` says which object the folder (or file) is.

::

    format: 1
    path: data          # the tracked file or folder, beside this pointer file
    kind: dir           # or file
    id: blake3:…        # the file's id, or the folder manifest's id
    size: 1048576       # bytes of content
    files: 20000        # files inside (1 for a file)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tether._documents import dump_yaml, load_yaml
from tether._fs import atomic_write
from tether.errors import PointerError
from tether.gitio.repo import POINTER_SUFFIX
from tether.hashing import is_object_id

FORMAT = 1
KINDS = ("file", "dir")


@dataclass(frozen=True)
class PointerFile:
    path: str  # name of the tracked file/folder, relative to the pointer's folder
    kind: str
    id: str
    size: int
    files: int
    format: int = FORMAT

    def to_bytes(self) -> bytes:
        doc = {
            "format": self.format,
            "path": self.path,
            "kind": self.kind,
            "id": self.id,
            "size": self.size,
            "files": self.files,
        }
        return dump_yaml(doc, sort_keys=False).encode()

    @classmethod
    def parse(cls, data: bytes, where: str) -> PointerFile:
        import yaml  # for its error type: loaded anyway by load_yaml

        try:
            doc = load_yaml(data)
        except yaml.YAMLError as exc:
            raise PointerError(
                f"{where} is not valid YAML ({str(exc).splitlines()[0]}): restore it with "
                f"`git checkout -- {where}` or re-create it with `tether add`"
            ) from exc
        if not isinstance(doc, dict):
            raise PointerError(f"{where} is not a pointer file (expected a YAML mapping)")
        fmt = doc.get("format")
        if fmt != FORMAT:
            raise PointerError(
                f"{where} has format {fmt!r}; this Tether reads pointer format {FORMAT}: "
                "upgrade Tether (or restore the file from git)"
            )
        try:
            ptr = cls(
                path=str(doc["path"]),
                kind=str(doc["kind"]),
                id=str(doc["id"]),
                size=int(doc["size"]),
                files=int(doc["files"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PointerError(f"{where} is missing or has a bad field ({exc})") from exc
        if ptr.kind not in KINDS or not is_object_id(ptr.id):
            raise PointerError(f"{where} has a bad kind or id: restore it from git")
        parts = PurePosixPath(ptr.path).parts
        if not parts or ".." in parts or ptr.path.startswith("/"):
            raise PointerError(
                f"{where} points at {ptr.path!r}, which leaves its folder: pointers may only name "
                "a file or folder beside them"
            )
        return ptr


def pointer_path_for(target: Path) -> Path:
    return target.with_name(target.name + POINTER_SUFFIX)


def target_of(pointer_rel: str, ptr: PointerFile) -> str:
    """Repository-relative POSIX path of what the pointer tracks."""
    parent = PurePosixPath(pointer_rel).parent
    return (parent / ptr.path).as_posix()


def read_pointer(root: Path, rel: str) -> PointerFile:
    try:
        data = (root / rel).read_bytes()
    except FileNotFoundError:
        raise PointerError(f"{rel} does not exist") from None
    return PointerFile.parse(data, rel)


def write_pointer(path: Path, ptr: PointerFile) -> None:
    atomic_write(path, ptr.to_bytes())
