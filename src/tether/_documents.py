"""Versioned JSON documents: ``{"tether": KIND, "format": N, ...}``.

Every format Tether writes carries its kind and version; a reader refuses a document of another
kind or of a version it does not know, with a message that says so.
"""

from __future__ import annotations

import json
from typing import Any

from tether.errors import FormatError


def read_document(data: bytes, kind: str, version: int, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("tether") != kind:
            raise ValueError(f"not a {kind}")
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting thousands deep
        raise FormatError(f"{what} is corrupt ({exc})") from exc
    if doc.get("format") != version:
        raise FormatError(
            f"{what} has format {doc.get('format')}; this Tether reads format {version}: "
            "upgrade Tether"
        )
    return doc


def shown(value: Any, limit: int = 60) -> str:
    """A value read from someone else's document, for a message: short, and never expanded
    (a YAML alias bomb is billions of items deep, a 5,000-digit number has no repr)."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if (
        value is None
        or isinstance(value, bool | float)
        or (isinstance(value, int) and -(10**18) < value < 10**18)
    ):
        return repr(value)
    if isinstance(value, int):
        return "a number too large"
    return f"a {type(value).__name__}"


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load`` through libyaml when it is there: 5-10x faster on a pipeline lock."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def dump_yaml(doc: Any, **options: Any) -> str:
    """``yaml.safe_dump`` through libyaml when it is there."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return str(yaml.dump(doc, Dumper=dumper, **options))
