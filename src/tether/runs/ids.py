"""Who and which: a run's id (a UUIDv7) and who a record names: the OS user, and the e-mail git
commits as (the identity ``tether reproduce`` compares, as the OS user is ``root`` or
``jovyan`` for everyone in a container). Either is a claim whoever wrote the record made."""

from __future__ import annotations

import getpass
import os
import time


def new_run_id() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids sort by start
    time. Made here because the `uuid6` package costs 15-40 ms to import (it loads
    importlib.metadata), more than a whole run's start."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & (2**62 - 1)
    hexed = f"{value:032x}"
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


# what git's config says of the e-mail it commits as (run with the other git commands at once)
EMAIL_CONFIG = ("config", "--get-regexp", r"^(committer|user)\.email$")


def email_from(config: bytes | None) -> str | None:
    """The e-mail git would commit as, from :data:`EMAIL_CONFIG`'s output: as
    :func:`tether.gitio.repo.committer_email` finds it; None when none is set."""
    given = os.environ.get("GIT_COMMITTER_EMAIL", "").strip()
    if given:
        return given
    found = dict(
        line.partition(" ")[::2] for line in (config or b"").decode(errors="replace").splitlines()
    )
    email = found.get("committer.email") or found.get("user.email") or os.environ.get("EMAIL")
    return email.strip() if email and email.strip() else None
