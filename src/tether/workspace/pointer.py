"""Pointer files: ``data.tether`` beside ``data/`` says which object the folder (or file) is.

::

    format: 1
    path: data          # the tracked file or folder, beside this pointer file
    kind: dir           # or file
    id: blake3:…        # the file's id, or the folder manifest's id
    size: 1048576       # bytes of content
    files: 20000        # files inside (1 for a file)

A pointer governs exactly the sibling its own file name names (``data.tether`` -> ``data``,
``dir/x.csv.tether`` -> ``dir/x.csv``); ``path:`` is still written, for readers that expect
it, and a pointer whose ``path:`` says anything else is refused: a pointer cannot reach into
``.git/hooks`` or a folder beside its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tether._documents import dump_yaml, load_yaml, shown
from tether._fs import atomic_write
from tether._paths import problem
from tether.errors import PointerError
from tether.gitio.repo import POINTER_SUFFIX
from tether.hashing import is_object_id

FORMAT = 1
KINDS = ("file", "dir")
MAX_BYTES = 64 << 10  # a pointer is a few lines; anything bigger is not one
MAX_COUNT = 1 << 63  # sizes and file counts: what a 64-bit file system can hold


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
    def parse(cls, data: bytes, where: str, *, name: str | None = None) -> PointerFile:
        """The pointer in ``data`` (``where`` names it in messages). ``name`` is the pointer
        file's own name (``data.tether``) when it is known: then ``path:`` must name its
        sibling (``data``). Anything else raises :class:`PointerError`."""
        import yaml  # for its error type: loaded anyway by load_yaml

        if len(data) > MAX_BYTES:
            raise PointerError(
                f"{where} is {len(data)} bytes, too big for a pointer file: restore it with "
                f"`git checkout -- {where}` or re-create it with `tether add`"
            )
        try:
            doc = load_yaml(data)
        except (yaml.YAMLError, RecursionError, ValueError, OverflowError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise PointerError(
                f"{where} is not valid YAML ({first}): restore it with "
                f"`git checkout -- {where}` or re-create it with `tether add`"
            ) from exc
        if not isinstance(doc, dict):
            raise PointerError(f"{where} is not a pointer file (expected a YAML mapping)")
        fmt = doc.get("format")
        if type(fmt) is not int or fmt != FORMAT:
            raise PointerError(
                f"{where} has format {shown(fmt)}; this Tether reads pointer format {FORMAT}: "
                "upgrade Tether (or restore the file from git)"
            )
        fields = {"path": str, "kind": str, "id": str, "size": int, "files": int}
        for key, want in fields.items():
            if key not in doc:
                raise PointerError(f"{where} has no {key!r}: restore it from git")
            if type(doc[key]) is not want or (want is int and not 0 <= doc[key] < MAX_COUNT):
                raise PointerError(
                    f"{where} has a bad {key!r} ({shown(doc[key])}): restore it from git"
                )
        ptr = cls(doc["path"], doc["kind"], doc["id"], doc["size"], doc["files"])
        if ptr.kind not in KINDS:
            raise PointerError(f"{where} has kind {shown(ptr.kind)}, not file or dir")
        if not is_object_id(ptr.id):
            raise PointerError(f"{where} has id {shown(ptr.id)}, not blake3: and 64 hex digits")
        if name is not None:
            sibling = sibling_name(name)
            if ptr.path != sibling:
                raise PointerError(
                    f"{where} says path {shown(ptr.path)}, but a pointer governs only the "
                    f"{sibling!r} beside it (its own name without {POINTER_SUFFIX}): refused. "
                    f"If it was renamed, name it after what it tracks, or `tether add` that again"
                )
        return ptr


def sibling_name(pointer_name: str) -> str:
    """What a pointer file named ``pointer_name`` tracks: its name without the suffix."""
    return pointer_name[: -len(POINTER_SUFFIX)] if pointer_name.endswith(POINTER_SUFFIX) else ""


def pointer_path_for(target: Path) -> Path:
    return target.with_name(target.name + POINTER_SUFFIX)


def target_of(pointer_rel: str, ptr: PointerFile | None = None) -> str:
    """Repository-relative POSIX path of what the pointer file ``pointer_rel`` tracks: the
    sibling its own name names (``ptr`` is not consulted: its ``path:`` was checked to agree)."""
    return pointer_rel[: -len(POINTER_SUFFIX)]


def read_pointer(root: Path, rel: str) -> PointerFile:
    """The pointer file at ``rel`` (repository-relative); refused, with a
    :class:`PointerError` naming it, when it cannot be read, when its ``path:`` is not its
    sibling, or when that sibling is not a path Tether writes (``.git``, a control character)."""
    if not rel.endswith(POINTER_SUFFIX):
        raise PointerError(f"{rel} is not a pointer file: its name does not end in .tether")
    why = problem(target_of(rel))
    if why is not None:
        raise PointerError(f"{rel} would track {target_of(rel)!r}, which Tether refuses: {why}")
    try:
        with open(root / rel, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise PointerError(f"{rel} does not exist") from None
    except OSError as exc:
        raise PointerError(f"{rel} cannot be read ({exc.strerror})") from exc
    return PointerFile.parse(data, rel, name=PurePosixPath(rel).name)


def write_pointer(path: Path, ptr: PointerFile) -> None:
    atomic_write(path, ptr.to_bytes())
