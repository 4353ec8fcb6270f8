"""``executor: ray``: stages run as Ray tasks, with their ``resources``, on any Ray cluster.

A worker shares nothing with the driver but the remote: it fetches the stage's deps by object id
into a scratch cache, runs the command in a scratch folder, stores the outs, pushes them to the
remote and returns their ids. The driver pushes the deps first, then fetches the outs back into
its cache and working tree, and records the stage as a run exactly as a local stage.
Ray is an optional extra (``pip install 'tether-ml[ray]'``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.errors import UsageError
from tether.hashing import hash_bytes, hash_file
from tether.objects.remote import Remote
from tether.objects.store import ObjectStore
from tether.objects.transfer import fetch_objects, push_objects
from tether.objects.tree import HEADER as TREE_HEADER
from tether.objects.tree import SYMLINK_MODE, Tree, TreeEntry, file_mode

RemoteSpec = tuple[str, str, dict[str, Any]]  # name, url, storage options


@dataclass
class RayResult:
    code: int
    outs: dict[str, str] = field(default_factory=dict)
    log: bytes = b""


def start_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(
            "executor ray needs Ray: pip install 'tether-ml[ray]' (or run without --executor)"
        ) from None
    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS") or None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    return ray


def submit(ray: Any, remote: RemoteSpec, deps: dict[str, str], cmd: str, env: dict[str, str],
           outs: list[str], resources: dict[str, float]) -> Any:  # fmt: skip
    options = {
        "num_cpus": resources.get("cpu", 1),
        "num_gpus": resources.get("gpu", 0),
        **({"memory": int(resources["memory"])} if "memory" in resources else {}),
    }
    task = ray.remote(run_stage).options(**options)
    return task.remote(remote, deps, cmd, env, outs)


def run_stage(
    remote_spec: RemoteSpec, deps: dict[str, str], cmd: str, env: dict[str, str], outs: list[str]
) -> RayResult:
    """On a worker: deps in by id, the command, outs back out by id."""
    remote = Remote(*remote_spec)
    with tempfile.TemporaryDirectory(prefix="tether-ray-") as tmp:
        cache = ObjectStore(Path(tmp) / "cache")
        cache.create()
        fetch_objects(cache, remote, set(deps.values()), jobs=4, pack_threshold=0)
        blobs = {
            b
            for oid in deps.values()
            if _is_tree(cache, oid)
            for b in cache.load_tree(oid).blob_ids()
        }
        fetch_objects(cache, remote, blobs, jobs=4, pack_threshold=0)
        work = Path(tmp) / "work"
        for path, oid in deps.items():
            _place(cache, work / path, oid)
        work.mkdir(exist_ok=True)
        proc = subprocess.run(
            ["sh", "-c", cmd], cwd=work, env={**os.environ, **env}, capture_output=True, check=False
        )
        result = RayResult(proc.returncode, log=proc.stdout + proc.stderr)
        if proc.returncode == 0:
            for path in outs:
                if (work / path).exists():
                    result.outs[path] = _store(cache, work / path)
            sent = set(result.outs.values())
            sent |= {
                b for oid in sent if _is_tree(cache, oid) for b in cache.load_tree(oid).blob_ids()
            }
            push_objects(cache, remote, sent, jobs=4, pack_threshold=65536, pack_size=8 << 20)
        return result


def _is_tree(store: ObjectStore, oid: str) -> bool:
    return store.read_head(oid, len(TREE_HEADER)) == TREE_HEADER


def _place(store: ObjectStore, dest: Path, oid: str) -> None:
    if not _is_tree(store, oid):
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.link_out(oid, str(dest), ("copy",))
        return
    for entry in store.load_tree(oid).entries:
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.target is not None:
            os.symlink(entry.target, target)
        else:
            store.link_out(entry.id, str(target), ("copy",), entry.mode)


def _store(store: ObjectStore, path: Path) -> str:
    """An out into the worker's cache, as ``tether add`` would see it: a folder's in-folder
    symlinks are kept as links (one leaving the folder is refused, as here), exec bits kept."""
    from tether.workspace.scan import scan

    if path.is_file():
        return store.put_bytes(path.read_bytes(), hash_file(path))
    entries = []
    for found in scan(path):
        if found.target is not None:
            data = found.target.encode()
            entries.append(
                TreeEntry(found.rel, hash_bytes(data), len(data), SYMLINK_MODE, found.target)
            )
            continue
        file = path / found.rel
        oid = store.put_bytes(file.read_bytes(), hash_file(file))
        entries.append(TreeEntry(found.rel, oid, found.st.st_size, file_mode(found.st.st_mode)))
    tree = Tree.build(entries)
    return store.put_bytes(tree.data, tree.id)
