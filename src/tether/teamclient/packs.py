"""The pack a client sends a server in one request: small objects back to back.

``TTHPACK1``, the index's length (8 bytes, big-endian), the index (JSON ``[[id, size], …]``),
then each object's bytes in the index's order. The server verifies every object against its id.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable

PACK_MAGIC = b"TTHPACK1"
PACK_MAX = 8 << 20  # a client packs objects below 1 MiB, up to this many bytes per request
SMALL = 1 << 20
DIRECT = 8 << 20  # from this size an object goes straight to the server's S3 when it can


def pack_bytes(objects: Iterable[tuple[str, bytes]]) -> bytes:
    items = list(objects)
    index = json.dumps([[oid, len(data)] for oid, data in items]).encode()
    return b"".join([PACK_MAGIC, struct.pack(">Q", len(index)), index, *(d for _, d in items)])
