"""What ``tether reproduce`` is told about judging: tolerances (``-t METRIC=REL``) and compare
modes (``-c PATH=MODE``), checked before anything is built.

A path is taken as ``tether run --out`` takes it: from the folder the user is in (``-c
out.txt=none`` in ``sub`` names ``sub/out.txt``, as ``--out out.txt`` there recorded it), and
also as typed, from the top of the repository (the way the verdict shows it). A key may be
prefixed by a stage or child run (``fit:model.txt``): its path part is taken the same way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tether.errors import UsageError
from tether.repro.verdict import MODES, Verdict

V = TypeVar("V")


@dataclass(frozen=True)
class Options:
    limits: dict[str, float]  # as typed
    modes: dict[str, str]
    folder: str  # the folder the user is in, from the top of the repository ("" at the top)

    @property
    def judged_limits(self) -> dict[str, float]:
        """The tolerances by every name they may give (see the module's docstring)."""
        return _with_aliases(self.limits, self.folder)

    @property
    def judged_modes(self) -> dict[str, str]:
        return _with_aliases(self.modes, self.folder)

    def unused(self, verdict: Verdict) -> str:
        """Tolerances and modes that named no metric or output (a typo leaves it exact)."""

        def names(keys: list[str]) -> set[str]:
            return set(keys) | {k.split(":", 1)[1] for k in keys if ":" in k}

        metrics = names([m.key for m in verdict.metrics])
        outs = names([o.path for o in verdict.outputs])

        def unknown(key: str, known: set[str]) -> bool:
            return not ({key, *aliases(key, self.folder)} & known)

        notes = [
            f"--tolerance {k} names no metric" for k in sorted(self.limits) if unknown(k, metrics)
        ]
        notes += [f"--compare {k} names no output" for k in sorted(self.modes) if unknown(k, outs)]
        return "; ".join(notes)


def options(
    tolerances: Mapping[str, float | str] | None,
    modes: Mapping[str, str] | None,
    env: str,
    cwd: str | Path,
    root: Path,
) -> Options:
    """The tolerances as numbers and the compare modes, checked; ``cwd`` the user's folder."""
    limits = {k: tolerance(k, v) for k, v in (tolerances or {}).items()}
    for path, mode in (modes or {}).items():
        if mode not in MODES:
            raise UsageError(
                f"--compare {path}={mode}: {mode!r} is not a compare mode; use " + ", ".join(MODES)
            )
    if env not in ("current", "fresh"):
        raise UsageError(f"--env takes current or fresh, not {env!r}")
    here, top = os.path.realpath(cwd), os.path.realpath(root)
    inside = here == top or here.startswith(top.rstrip(os.sep) + os.sep)
    folder = Path(os.path.relpath(here, top)).as_posix() if inside and here != top else ""
    return Options(limits, dict(modes or {}), folder)


def tolerance(key: str, value: float | str) -> float:
    """A relative tolerance from ``0.01``, ``"0.01"`` or ``"1%"``; a bare number above 1
    (``5``: almost surely meant as 5%) is refused, ``"500%"`` is taken as written."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise UsageError(
            f"--tolerance {key}={value}: a tolerance is a relative amount, 0 or more, "
            "like 0.01 or 1%"
        )
    if number > 1 and not text.endswith("%"):  # `5` meant 5%, not 500%
        raise UsageError(
            f"--tolerance {key}={value}: a relative tolerance above 1 is more than 100%: write "
            f"{text}% or {number / 100:g} (or {number * 100:g}% if you mean it)"
        )
    return number


def aliases(key: str, folder: str) -> list[str]:
    """``key`` with its path part taken from ``folder``: each way of reading a ``prefix:`` off
    it (a stage's or a child run's name), the path after it joined to the folder."""
    if not folder:
        return []
    cuts = [0] + [i + 1 for i, c in enumerate(key) if c == ":"]
    out = []
    for cut in cuts:
        prefix, rest = key[:cut], key[cut:]
        if not rest or os.path.isabs(rest):
            continue
        joined = os.path.normpath(os.path.join(folder, rest))
        if not joined.startswith(".."):
            out.append(prefix + Path(joined).as_posix())
    return out


def _with_aliases(typed: dict[str, V], folder: str) -> dict[str, V]:
    """``typed`` and, for each key, its readings from ``folder`` (a key typed wins)."""
    out = dict(typed)
    for key, value in typed.items():
        for alias in aliases(key, folder):
            out.setdefault(alias, value)
    return out
