"""The environment pillar of a run record: interpreter, packages, lock files, conda, container, GPU.

Reading the metadata of every installed distribution costs tens of milliseconds, so the slow part
(packages, lock-file ids, conda packages, GPU stack, libc) is a *snapshot* kept in
``cache_dir/env-<fingerprint>.json``. The fingerprint is cheap to compute: the interpreter, every
``sys.path`` entry with its folder's mtime and inode (installing or removing a package changes
the folder), the conda-meta folder's mtime, the lock files' stat and the host's boot id (a GPU
driver changes only across a reboot). The rest (determinism flags, allow-listed variables and
the names of all variables, container hints, torch's CUDA build) is cheap and read on every call.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tether._fs import atomic_write
from tether.errors import CacheWriteError
from tether.hashing import hash_bytes, hash_file

FORMAT = 1
_CACHE_FORMAT = 1
_CACHE_KEEP = 4
_SNAPSHOT_KEYS = {"conda", "gpu", "libc", "lock_files", "packages"}
DEFAULT_ALLOW_ENV = (
    "CUBLAS_WORKSPACE_CONFIG", "CUDA_VISIBLE_DEVICES", "LANG", "MKL_NUM_THREADS", "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED", "PYTHONOPTIMIZE", "TF_DETERMINISTIC_OPS",
    "TOKENIZERS_PARALLELISM", "TZ",
)  # fmt: skip
_LOCK_FILE = re.compile(
    r"uv\.lock|poetry\.lock|Pipfile\.lock|pylock(\.[^/]+)?\.toml|requirements[^/]*\.txt"
    r"|environment\.ya?ml|conda-lock\.yml"
)
# image references set by the user or by CI systems that run jobs in a container
_IMAGE_VARS = ("TETHER_CONTAINER_IMAGE", "CI_JOB_IMAGE", "BUILDKITE_PLUGIN_DOCKER_IMAGE")
_DIGEST_VARS = ("TETHER_CONTAINER_DIGEST",)
# (substring of /proc/*/cgroup, runtime): the first match wins
_CGROUP_HINTS = (
    ("kubepods", "kubernetes"), ("libpod", "podman"), ("docker", "docker"),
    ("containerd", "containerd"),
)  # fmt: skip
_NVIDIA_QUERY = "--query-gpu=name,memory.total,driver_version"

LockStat = tuple[str, os.stat_result]  # (path, stat) of a lock file


def _keep(value: str) -> str:
    return value


def capture_environment(
    root: Path,
    cache_dir: Path,
    *,
    allow_env: Iterable[str] = (),
    redact: Callable[[str], str] = _keep,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The environment a run executes in, as a JSON-able dict (``format: 1``). ``environ`` is
    the command's variables when they are not this process's (``env TZ=UTC python ...``).

    Never captures the value of an environment variable outside the allow-list, only its name
    (``env_names``: every variable set, so two runs can show one set in one run only);
    ``redact`` filters the values.
    """
    environ = os.environ if environ is None else environ
    locks = _lock_file_stats(Path(root))
    conda_prefix = _conda_prefix()
    fingerprint = _fingerprint(locks, conda_prefix)
    snapshot = _read_snapshot(Path(cache_dir), fingerprint)
    if snapshot is None:
        snapshot = _take_snapshot(locks, conda_prefix)
        _write_snapshot(Path(cache_dir), fingerprint, snapshot)
    uname = os.uname()
    env: dict[str, Any] = {
        "format": FORMAT,
        "python": _python_info(),
        "platform": {
            "libc": snapshot["libc"],
            "machine": uname.machine,
            "release": uname.release,
            "system": uname.sysname,
        },
        "packages": snapshot["packages"],
        "lock_files": snapshot["lock_files"],
        "determinism": _determinism(environ),
        "env_vars": _allowed_env_vars(allow_env, redact, environ),
        "env_names": sorted({redact(name) for name in environ}),  # names only: never values
        "pythonpath": [redact(p) for p in pythonpath(environ)],
    }
    if snapshot.get("conda"):
        env["conda"] = snapshot["conda"]
    container = _container(redact)
    if container:
        env["container"] = container
    gpu = {**(snapshot.get("gpu") or {}), **_torch_cuda()}
    if gpu:
        env["gpu"] = dict(sorted(gpu.items()))
    return dict(sorted(env.items()))


# -- fingerprint and cache ------------------------------------------------------------------------
def _stat_key(path: str) -> tuple[int, int] | None:
    try:
        return (st := os.stat(path)).st_mtime_ns, st.st_ino
    except OSError:
        return None


def _is_site(path: str) -> bool:
    return path.endswith(("site-packages", "dist-packages", ".zip"))


_METADATA = (".dist-info", ".egg-info", ".egg-link", ".pth")


def _metadata_key(path: str) -> tuple[tuple[str, int], ...] | None:
    """A folder on sys.path that is not a site folder (the script's own, a source tree): only
    its package metadata counts, so a run writing its outputs next to the script does not make
    the next run take a fresh snapshot."""
    try:
        with os.scandir(path) as it:
            return tuple(
                sorted((e.name, e.stat().st_mtime_ns) for e in it if e.name.endswith(_METADATA))
            )
    except OSError:
        return None


def _fingerprint(locks: list[LockStat], conda_prefix: Path | None) -> str:
    parts: list[object] = [_CACHE_FORMAT, sys.executable, sys.version, os.uname().nodename]
    parts.append(_read_small("/proc/sys/kernel/random/boot_id"))
    for entry in sys.path:
        path = entry or os.getcwd()  # "" is the current folder
        parts.append((path, _stat_key(path) if _is_site(path) else _metadata_key(path)))
    user_site = _user_site()
    if user_site is not None:  # searched by the next process once it exists (pip install --user)
        parts.append((user_site, _stat_key(user_site)))
    if conda_prefix is not None:
        conda_env = os.environ.get("CONDA_DEFAULT_ENV")
        parts.append((str(conda_prefix), _stat_key(str(conda_prefix / "conda-meta")), conda_env))
    for path, st in locks:
        parts.append((path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return hash_bytes(repr(parts).encode())[len("blake3:") :][:32]


def _user_site() -> str | None:
    import site

    return site.USER_SITE if site.ENABLE_USER_SITE and site.USER_SITE else None


def _read_snapshot(cache_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    path = cache_dir / f"env-{fingerprint}.json"
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None  # missing, unreadable or torn: take a fresh snapshot
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
        return None
    if data.get("fingerprint") != fingerprint or not data.keys() >= _SNAPSHOT_KEYS:
        return None
    try:
        os.utime(path)  # the newest files survive pruning
    except OSError:
        pass
    return data


def _write_snapshot(cache_dir: Path, fingerprint: str, snapshot: dict[str, Any]) -> None:
    """Best effort: a cache that cannot be written only costs the next call some time."""
    record = {**snapshot, "format": _CACHE_FORMAT, "fingerprint": fingerprint}
    data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # not durable: a snapshot lost in a crash is recomputed; rename keeps it whole
        atomic_write(cache_dir / f"env-{fingerprint}.json", data, durable=False)
        _prune_snapshots(cache_dir)
    except (OSError, CacheWriteError):
        pass


def _prune_snapshots(cache_dir: Path) -> None:
    found: list[tuple[int, str]] = []
    with os.scandir(cache_dir) as entries:
        for entry in entries:
            if entry.name.startswith("env-") and entry.name.endswith(".json"):
                try:
                    found.append((entry.stat().st_mtime_ns, entry.path))
                except OSError:
                    continue
    for _, path in sorted(found, reverse=True)[_CACHE_KEEP:]:
        Path(path).unlink(missing_ok=True)


def _take_snapshot(locks: list[LockStat], conda_prefix: Path | None) -> dict[str, Any]:
    import platform

    libc_name, libc_version = platform.libc_ver()
    return {
        "conda": _conda_info(conda_prefix) if conda_prefix is not None else None,
        "gpu": _nvidia_stack(),
        "libc": {"name": libc_name, "version": libc_version},
        # the lock files live at the repository root: the name is the repo-relative path
        "lock_files": {os.path.basename(path): hash_file(path) for path, _ in locks},
        "packages": _installed_packages(),
    }


# -- interpreter and variables --------------------------------------------------------------------
def _python_info() -> dict[str, Any]:
    return {
        "base_prefix": sys.base_prefix,
        "executable": sys.executable,
        "implementation": sys.implementation.name,
        "prefix": sys.prefix,
        "venv": sys.prefix != sys.base_prefix,
        "version": sys.version.split()[0],
    }


def pythonpath(env: Mapping[str, str], cwd: str | None = None) -> list[str]:
    """The folders ``PYTHONPATH`` puts first on ``sys.path``, absolute (code imported from
    outside the repository is no part of the code pillar)."""
    base = cwd or os.getcwd()
    entries = (env.get("PYTHONPATH") or "").split(os.pathsep)
    return [os.path.normpath(os.path.join(base, e)) for e in entries if e]


def _allowed_env_vars(
    allow_env: Iterable[str], redact: Callable[[str], str], environ: Mapping[str, str]
) -> dict[str, str]:
    names = {*DEFAULT_ALLOW_ENV, *allow_env}
    # redacted as `NAME=value`, so a secret-looking name masks its whole value
    return {
        name: redact(f"{name}={environ[name]}").split("=", 1)[1]
        for name in sorted(names)
        if name in environ
    }


def _determinism(environ: Mapping[str, str]) -> dict[str, Any]:
    seed = environ.get("PYTHONHASHSEED")
    own = environ is os.environ  # another environment's Python: as its PYTHONHASHSEED says
    out: dict[str, Any] = {
        "CUBLAS_WORKSPACE_CONFIG": environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "PYTHONHASHSEED": seed,
        "hash_randomization": bool(sys.flags.hash_randomization) if own else seed != "0",
    }
    torch: Any = sys.modules.get("torch")  # read only when the run imported it already
    if torch is not None:
        try:
            enabled = torch.are_deterministic_algorithms_enabled()
            out["torch_deterministic_algorithms"] = bool(enabled)
            out["cudnn_deterministic"] = bool(torch.backends.cudnn.deterministic)
            out["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
        except Exception:  # a partial or unusual torch build: record what was read
            pass
    return dict(sorted(out.items()))


# -- packages -------------------------------------------------------------------------------------
def normalize_name(name: str) -> str:
    """PEP 503 normalised project name: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_packages() -> dict[str, dict[str, Any]]:
    from importlib import metadata

    packages: dict[str, dict[str, Any]] = {}
    for dist in metadata.distributions():  # sys.path order: the first one wins, as in pip
        name, version = _name_and_version(dist)
        key = normalize_name(name) if name else ""
        if not key or key in packages:
            continue
        entry: dict[str, Any] = {"version": version}
        source = _direct_url_source(dist.read_text("direct_url.json"))
        if source is not None:
            entry["source"] = source
        packages[key] = entry
    return dict(sorted(packages.items()))


def _name_and_version(dist: Any) -> tuple[str, str]:
    """Name and Version from the metadata headers, without the slow e-mail parser."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            break  # end of the headers; the long description follows
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in fields:
            fields[key] = value.strip()
    return fields.get("Name", ""), fields.get("Version", "")


def _direct_url_source(text: str | None) -> dict[str, Any] | None:
    """PEP 610 ``direct_url.json``: where an editable, VCS or URL install came from."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    dir_info = data.get("dir_info")
    if not isinstance(dir_info, dict):
        dir_info = {}
    source: dict[str, Any] = {
        "editable": bool(dir_info.get("editable", False)),
        "url": _strip_credentials(data["url"]),
    }
    vcs_info = data.get("vcs_info")
    if isinstance(vcs_info, dict):
        for key in ("commit_id", "requested_revision", "vcs"):
            if isinstance(vcs_info.get(key), str):
                source[key] = vcs_info[key]
    return dict(sorted(source.items()))


def _strip_credentials(url: str) -> str:
    """Drop ``user:password@`` from a URL (``git@`` stays: it is no secret)."""
    return re.sub(r"^([a-zA-Z][\w+.-]*://)(?!git@)[^/@\s]+@", r"\1", url)


# -- lock files -----------------------------------------------------------------------------------
def _lock_file_stats(root: Path) -> list[LockStat]:
    found: list[LockStat] = []
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if _LOCK_FILE.fullmatch(entry.name) and entry.is_file():
                    try:
                        found.append((entry.path, entry.stat()))
                    except OSError:
                        continue
    except OSError:
        return []
    return sorted(found, key=lambda item: item[0])


# -- conda ----------------------------------------------------------------------------------------
def _conda_prefix() -> Path | None:
    for candidate in (sys.prefix, sys.base_prefix, os.environ.get("CONDA_PREFIX")):
        if candidate and os.path.isdir(os.path.join(candidate, "conda-meta")):
            return Path(candidate)
    return None


def _conda_info(prefix: Path) -> dict[str, Any]:
    packages: dict[str, dict[str, str]] = {}
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            continue
        packages[data["name"]] = {
            "build": str(data.get("build", "")),
            "channel": conda_channel(str(data.get("channel", ""))),
            "version": str(data.get("version", "")),
        }
    return {"name": _conda_env_name(prefix), "packages": packages, "prefix": str(prefix)}


def _conda_env_name(prefix: Path) -> str:
    active = os.environ.get("CONDA_DEFAULT_ENV")
    if active and os.environ.get("CONDA_PREFIX") == str(prefix):
        return Path(active).name  # conda activated by path: the folder's name
    return "base" if (prefix / "condabin").is_dir() else prefix.name


def conda_channel(raw: str) -> str:
    """``https://conda.anaconda.org/conda-forge/linux-64`` -> ``conda-forge``; tokens dropped."""
    channel = re.sub(r"/t/[^/]+", "", raw).rstrip("/")
    channel = re.sub(r"/(noarch|(linux|osx|win|emscripten|wasi|zos)-[\w]+)$", "", channel)
    for host in ("https://conda.anaconda.org/", "https://repo.anaconda.com/"):
        if channel.startswith(host):
            return channel[len(host) :]
    return channel


# -- container and GPU ----------------------------------------------------------------------------
def _read_small(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(65536)
    except OSError:
        return ""


def _container_runtime() -> str | None:
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    cgroups = _read_small("/proc/self/cgroup") + _read_small("/proc/1/cgroup")
    for hint, runtime in _CGROUP_HINTS:
        if hint in cgroups:
            return runtime
    return None


def _container(redact: Callable[[str], str]) -> dict[str, str] | None:
    runtime = _container_runtime()
    if runtime is None:
        return None
    info = {"runtime": runtime}
    podman = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', _read_small("/run/.containerenv"), re.M))
    image = next((os.environ[v] for v in _IMAGE_VARS if os.environ.get(v)), podman.get("image"))
    digest = next((os.environ[v] for v in _DIGEST_VARS if os.environ.get(v)), None)
    if image and "@sha256:" in image:
        image, _, digest_hex = image.partition("@")
        digest = digest or digest_hex
    if image:
        info["image"] = redact(image)
    if digest or podman.get("imageid"):
        info["digest" if digest else "image_id"] = redact(digest or podman["imageid"])
    return dict(sorted(info.items()))


def _nvidia_stack() -> dict[str, Any] | None:
    info: dict[str, Any] = {}
    match = re.search(r"Kernel Module\s+(\S+)", _read_small("/proc/driver/nvidia/version"))
    if match:
        info["driver"] = match.group(1)
    devices = _nvidia_smi_devices()
    if devices:
        info["devices"] = devices
    return info or None


def _nvidia_smi_devices() -> list[dict[str, str]]:
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        args = [exe, _NVIDIA_QUERY, "--format=csv,noheader"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    devices = []
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == 3:
            devices.append(dict(zip(("name", "memory", "driver"), fields, strict=True)))
    return devices


def _torch_cuda() -> dict[str, Any]:
    """CUDA and cuDNN versions torch was built with, when the run imported torch already."""
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return {}
    try:
        cuda = torch.version.cuda
        cudnn = torch.backends.cudnn.version() if cuda else None
    except Exception:  # a CPU-only or unusual build
        return {}
    if not cuda:
        return {}
    out = {"torch": str(getattr(torch, "__version__", "")), "cuda": str(cuda)}
    if cudnn:
        out["cudnn"] = str(cudnn)
    return out
