"""What a clone pins: the fingerprint of the root its chain starts with, and the highest root
version it has seen (``.tether/trust.json``). Taken at first use, or from ``TETHER_ROOT_KEY``
(or a command's ``--root``), which always wins. A chain whose first root has another fingerprint,
whose newest root is older than one seen here, or that had a root and now has none, is refused."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tether._fs import atomic_write
from tether.errors import TrustError

PIN_FILE = "trust.json"
ROOT_ENV = "TETHER_ROOT_KEY"
FORMAT = 1


@dataclass(frozen=True)
class Pin:
    fingerprint: str
    version: int


def read(dot: Path) -> Pin | None:
    try:
        doc = json.loads((dot / PIN_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TrustError(
            f"{dot / PIN_FILE} cannot be read ({exc}): it pins this clone's root of trust; "
            f"restore it, or set {ROOT_ENV} to the root's fingerprint"
        ) from None
    if not (
        isinstance(doc, dict)
        and doc.get("format") == FORMAT
        and isinstance(doc.get("fingerprint"), str)
        and type(doc.get("version")) is int
    ):
        raise TrustError(f"{dot / PIN_FILE} is not a pin of format {FORMAT}: restore it")
    return Pin(doc["fingerprint"], doc["version"])


def write(dot: Path, pin: Pin) -> None:
    doc = {"format": FORMAT, "fingerprint": pin.fingerprint, "version": pin.version}
    atomic_write(dot / PIN_FILE, (json.dumps(doc, indent=2) + "\n").encode())


def check(
    dot: Path, fingerprint: str | None, version: int, *, given: str | None = None,
    record: bool = True,
) -> None:  # fmt: skip
    """Hold the chain (its first root's ``fingerprint``, its newest ``version``; None and 0 when
    it has no root) to what this clone pinned; pin it at first use, raise the version seen
    (``record``: False for a chain not taken yet, such as a pull's candidate)."""
    pinned = read(dot)
    wanted = given or os.environ.get(ROOT_ENV) or (pinned.fingerprint if pinned else None)
    if fingerprint is None:
        if wanted is not None:
            raise TrustError(
                f"this clone trusts the root {wanted[:23]}…, but the event log has no root of "
                "trust now: someone removed it; fetch the log again from a remote you trust"
            )
        return
    if wanted is not None and wanted != fingerprint:
        raise TrustError(
            f"the event log's root of trust is {fingerprint[:23]}…, not {wanted[:23]}… which "
            f"this clone trusts ({'given' if given or os.environ.get(ROOT_ENV) else 'pinned'}): "
            "refusing every decision made under it; ask your admins which root is real"
        )
    if pinned is not None and pinned.fingerprint == fingerprint and version < pinned.version:
        raise TrustError(
            f"the event log's newest root is version {version}, but this clone has seen "
            f"version {pinned.version}: the log was rolled back; fetch it from a remote you trust"
        )
    if record and (pinned is None or pinned.fingerprint != fingerprint or pinned.version < version):
        write(dot, Pin(fingerprint, version))
