"""Talking to a team server over HTTP (httpx): every call has a bounded timeout, idempotent calls
are retried (tenacity) when the server is unreachable or answers 503, and the server's error
bodies become the same errors the server raised, with its message.

Every write the client makes is idempotent (objects are named by their content, a run by its
id and sealed record), so a retry after a server killed mid-request never stores a thing twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether import errors
from tether.meta.lineage import DataRow
from tether.meta.store import IndexedRun, MetricSummary

if TYPE_CHECKING:
    import httpx

API = "/api/v1"
TIMEOUT_S = 5.0  # no command waits on a down server longer than this (per call, and in retries)
NOT_LIVE = ("ended", "exit_code", "record", "deleted", "inputs", "outputs")  # sealed runs' only


@dataclass(frozen=True)
class Target:
    """A server and a project on it, with the token to use (None: a loopback server that has
    no accounts yet)."""

    url: str
    project: str
    token: str | None = None
    timeout: float = TIMEOUT_S

    @property
    def key(self) -> str:
        """A short name for this server and project: acknowledgements are kept per key."""
        import hashlib

        return hashlib.sha256(f"{self.url.rstrip('/')}\n{self.project}".encode()).hexdigest()[:16]


_BY_STATUS: dict[int, type[errors.TetherError]] = {
    400: errors.UsageError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.MissingProjectError,
    409: errors.ConflictError,
    413: errors.PayloadTooLargeError,
    503: errors.ServerUnavailableError,
}
_BY_NAME: dict[str, type[errors.TetherError]] = {
    "MissingObjectError": errors.ServerError,
    "QueryError": errors.UsageError,
}


class ServerClient:
    def __init__(self, target: Target, *, retries: int = 2) -> None:
        import httpx

        self.target = target
        self.retries = retries
        headers = {"User-Agent": "tether"}
        if target.token:
            headers["Authorization"] = f"Bearer {target.token}"
        self.http = httpx.Client(
            base_url=target.url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(target.timeout, connect=min(2.0, target.timeout)),
        )
        self.project_path = f"{API}/projects/{target.project}"
        self.direct: bool | None = None  # does the server take presigned uploads? (unknown)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------
    def call(
        self, method: str, path: str, *, body: Callable[[], Any] | None = None, **kwargs: Any
    ) -> Any:
        """One request, retried while the server is unreachable or busy (503); its JSON.
        ``body`` makes the request's content afresh for each attempt (a file read again)."""
        import httpx
        import tenacity

        def transient(exc: BaseException) -> bool:
            return isinstance(exc, (httpx.TransportError, errors.ServerUnavailableError))

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(transient),
            stop=tenacity.stop_after_attempt(self.retries + 1)
            | tenacity.stop_after_delay(self.target.timeout),
            wait=tenacity.wait_random_exponential(multiplier=0.1, max=1.0),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if body is not None:
                        kwargs["content"] = body()
                    response = self.http.request(method, path, **kwargs)
                    self._raise_for(response)
        except httpx.TransportError as exc:
            raise errors.ServerUnavailableError(
                f"the server at {self.target.url} did not answer ({type(exc).__name__}: {exc}); "
                "nothing is lost: what is not uploaded yet goes with the next `tether sync`"
            ) from exc
        return response.json() if response.content else None

    def _raise_for(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            body = response.json()
            message, kind = str(body.get("message", "")), str(body.get("error", ""))
        except ValueError:
            message, kind = response.text[:500], ""
        named = getattr(errors, kind, None) if kind.isidentifier() else None
        if not (isinstance(named, type) and issubclass(named, errors.ServerError)):
            named = _BY_NAME.get(kind) or _BY_STATUS.get(response.status_code, errors.ServerError)
        error: type[errors.TetherError] = named
        raise error(f"the server at {self.target.url} refused: {message}")

    # -- objects ---------------------------------------------------------------------------
    def missing(self, ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(ids), 50_000):
            doc = self.call(
                "POST",
                f"{self.project_path}/objects/missing",
                json={"ids": list(ids[start : start + 50_000])},
            )
            asked = set(ids[start : start + 50_000])
            got = self._listed(doc, "missing")
            if not all(isinstance(oid, str) and oid in asked for oid in got):
                raise errors.ServerError(
                    f"the server at {self.target.url} answered with ids it was not asked about: "
                    "is it a Tether server?"
                )
            found.extend(got)
        return found

    def _listed(self, doc: Any, key: str) -> list[Any]:
        """``doc[key]``, a list, from a server's answer; else a clear error, not a crash."""
        value = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(value, list):
            raise errors.ServerError(
                f"the server at {self.target.url} answered without a list of {key!r}: is it a "
                "Tether server of a version this one speaks to?"
            )
        return value

    def put_object(self, oid: str, source: Path | bytes) -> None:
        """Upload one object, streamed from its file (or given whole)."""
        content = (lambda: _chunks(source)) if isinstance(source, Path) else (lambda: source)
        self.call("PUT", f"{self.project_path}/objects/{oid}", body=content)

    def put_direct(self, oid: str, path: Path) -> bool:
        """Upload a big object straight to the server's S3 through a presigned URL, then have
        the server hash it; False when the server's store takes no direct uploads."""
        import httpx

        if self.direct is False:
            return False
        try:
            ticket = self.call("POST", f"{self.project_path}/uploads", json={"id": oid})
        except errors.UsageError:
            self.direct = False  # a folder store: everything goes through the server
            return False
        self.direct = True
        try:  # no Authorization header: the token is for the server, never for S3
            with open(path, "rb") as f:
                sent = httpx.put(ticket["url"], content=f, timeout=self.target.timeout * 12)
        except httpx.TransportError as exc:
            raise errors.ServerUnavailableError(
                f"the upload of {oid} to the server's store failed ({exc}): `tether sync` again"
            ) from exc
        if sent.status_code >= 300:
            raise errors.ServerError(
                f"the server's store refused the upload of {oid} (HTTP {sent.status_code})"
            )
        self.call("POST", f"{self.project_path}/uploads/{ticket['upload']}/commit")
        return True

    def put_pack(self, objects: Iterable[tuple[str, bytes]]) -> list[str]:
        from tether.teamclient.packs import pack_bytes

        doc = self.call("POST", f"{self.project_path}/packs", content=pack_bytes(objects))
        return list(doc["stored"])

    def get_object(self, oid: str) -> bytes:
        """An object's bytes, checked against its id: a server is trusted for nothing."""
        from tether.hashing import hash_bytes

        response = self.http.get(f"{self.project_path}/objects/{oid}")
        self._raise_for(response)
        if hash_bytes(response.content) != oid:
            raise errors.CorruptObjectError(
                f"the server at {self.target.url} sent bytes for {oid} that do not hash to it: "
                "refused, nothing stored"
            )
        return response.content

    # -- runs ------------------------------------------------------------------------------
    def put_run(
        self, run_id: str, record: str, amendments: Sequence[str], tombstone: str | None
    ) -> None:
        body = {"record": record, "amendments": list(amendments), "tombstone": tombstone}
        self.call("PUT", f"{self.project_path}/runs/{run_id}", json=body)

    def search(
        self,
        where: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        *,
        include_deleted: bool = False,
        offset: int = 0,
    ) -> list[IndexedRun]:
        body = {
            "where": where,
            "sort": sort,
            "limit": limit,
            "include_deleted": include_deleted,
            "offset": offset,
        }
        doc = self.call("POST", f"{self.project_path}/runs/search", json=body)
        return [indexed_run(r) for r in self._listed(doc, "runs")]

    def get_runs(self, ids: Sequence[str]) -> list[IndexedRun]:
        doc = self.call("POST", f"{self.project_path}/runs/get", json={"ids": list(ids)})
        return [indexed_run(r) for r in self._listed(doc, "runs")]

    def resolve(self, ref: str) -> list[str]:
        doc = self.call("GET", f"{self.project_path}/runs/resolve", params={"ref": ref})
        return list(doc["ids"])

    def put_live(self, run: IndexedRun) -> None:
        """The state of a run still running, for the team to see (best effort)."""
        doc = {k: v for k, v in run_document(run).items() if k not in NOT_LIVE}
        self.call("PUT", f"{self.project_path}/runs/{run.id}/live", json=doc)

    def run_state(self, run_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.call("GET", f"{self.project_path}/runs/{run_id}/state")
        return doc

    def run_states(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The server's state of each of these runs it holds, in calls of 1,000."""
        found: dict[str, dict[str, Any]] = {}
        for at in range(0, len(run_ids), 1000):
            doc = self.call(
                "POST", f"{self.project_path}/runs/states", json={"ids": run_ids[at : at + 1000]}
            )
            found.update(doc["states"])
        return found

    def whoami(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.call("GET", f"{API}/whoami")
        return doc


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


class HttpMetaStore(ServerClient):
    """:class:`tether.meta.store.MetaStore` over a team server: the same searches, answered by
    the project's index on the server. Its writes go through ``tether sync``, never here."""

    def put_runs(
        self, runs: Sequence[IndexedRun], *, replace: bool = True, clear: bool = False
    ) -> None:
        raise errors.UsageError("a server's index is written by `tether sync`, not directly")

    def set_deleted(self, run_ids: Sequence[str], deleted: bool = True) -> None:
        raise errors.UsageError("`tether runs delete` then `tether sync` deletes on the server")

    def indexed_records(self) -> dict[str, str | None]:
        return {r.id: r.record for r in self.search(include_deleted=True)}

    def clear(self) -> None:
        raise errors.UsageError("a server's index is rebuilt on the server, not by a client")

    # what lineage asks
    def data_rows(
        self,
        role: str,
        *,
        objects: Iterable[str] = (),
        paths: Iterable[str] = (),
        folder: str | None = None,
    ) -> list[DataRow]:
        body = {"role": role, "objects": sorted(objects), "paths": sorted(paths), "folder": folder}
        doc = self.call("POST", f"{self.project_path}/lineage/data", json=body)
        return [DataRow(*row) for row in doc["rows"]]

    def children(self, run_ids: Sequence[str]) -> list[tuple[str, str]]:
        doc = self.call(
            "POST", f"{self.project_path}/lineage/children", json={"ids": list(run_ids)}
        )
        return [(parent, child) for parent, child in doc["children"]]

    def objects_with_prefix(self, prefix: str, limit: int = 20) -> list[str]:
        params = {"prefix": prefix, "limit": limit}
        return list(self.call("GET", f"{self.project_path}/lineage/objects", params=params)["ids"])

    def visible_run_ids(self) -> list[str]:
        return list(self.call("GET", f"{self.project_path}/lineage/runs")["ids"])


def run_document(run: IndexedRun) -> dict[str, Any]:
    """An indexed run as JSON: NaN and infinities as strings, as run records write them."""
    import dataclasses

    doc = dataclasses.asdict(run)
    for summary in doc["metrics"].values():
        for key in ("last", "min", "max"):
            value = summary[key]
            if not math.isfinite(value):
                summary[key] = (
                    "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
                )
    return doc


def _number(value: Any) -> float:
    if isinstance(value, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
    return float(value)


def indexed_run(doc: Mapping[str, Any]) -> IndexedRun:
    """An :class:`IndexedRun` from the server's JSON."""
    fields = dict(doc)
    fields["metrics"] = {
        key: MetricSummary(
            _number(m["last"]), _number(m["min"]), _number(m["max"]), m["step"], m["count"]
        )
        for key, m in doc.get("metrics", {}).items()
    }
    return IndexedRun(**fields)
