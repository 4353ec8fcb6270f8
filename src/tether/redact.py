"""Secret redaction: what looks like a credential never reaches a record, a log, a diff or a ledger.

Rules are regular expressions; a match's ``secret`` group (or the whole match when there is none)
is replaced by ``***``. Users add rules in ``tether.toml`` (``[redact] patterns = [...]``) and
name extra secret-looking parameter keys (``[redact] keys = [...]``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MASK = "***"

# `PGPASSWORD`, `DB_PASSWORD`, `api_token` are secret; `max_tokens` and `author` are not: the
# short words must stand alone as a name part, the long ones may carry a prefix
_KEYWORDS = (
    r"(?:(?:passw(?:or)?d|secret|credentials?|authorization)(?![a-z])"
    r"|(?<![a-z])(?:token|api[_-]?key|apikey|access[_-]?key|private[_-]?key)(?![a-z]))"
)

# Every pattern starts at a literal or a word boundary and bounds its repeats, so redaction stays
# linear: a 100 kB line of one letter (a data file in a diff) must not backtrack quadratically.
BUILTIN_PATTERNS = (
    # URLs with a password: keep the user, hide the password
    r"\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^\s:/@]{0,256}:(?P<secret>[^\s@/]{1,256})@",
    r"(?i)\b(?:bearer|basic)\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})",
    # key = value, key: value, "key": "value", DB_PASSWORD=value in a shell line
    rf"(?i){_KEYWORDS}[\w.-]{{0,64}}\\?[\"']?\s{{0,8}}[:=]\s{{0,8}}\\?[\"']?(?P<secret>[^\s\"',;\\]+)",
    # --api-key value on a command line (the match starts at the keyword; _mask checks the --)
    rf"(?i){_KEYWORDS}[\w-]{{0,64}}\s+[\"']?(?P<flag>[^\s\"']+)",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{30,}\b",
    r"\bsk-[A-Za-z0-9_-]{20,}\b",  # OpenAI-style keys
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",  # Slack
    r"\bhf_[A-Za-z0-9]{30,}\b",  # Hugging Face
    r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b",  # JWT
    r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----[\s\S]*?-----END [A-Z ]{0,40}PRIVATE KEY-----",
)

_SECRET_KEY = re.compile(rf"(?i){_KEYWORDS}")


def looks_secret(key: str) -> bool:
    """A name (a parameter, a variable) that says its value is a credential, by the built-in
    keywords; :meth:`Redactor.is_secret_key` adds the user's keys."""
    return bool(_SECRET_KEY.search(key))


@dataclass
class Redactor:
    """Applies every rule; ``redact`` is idempotent (a masked value stays masked)."""

    extra_patterns: Iterable[str] = ()
    extra_keys: Iterable[str] = ()
    _rules: list[re.Pattern[str]] = field(init=False, repr=False)
    _any: re.Pattern[str] | None = field(init=False, repr=False)
    _keys: set[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rules, self._any = _compiled((*BUILTIN_PATTERNS, *self.extra_patterns))
        self._keys = {k.lower() for k in self.extra_keys}

    def redact(self, text: str) -> str:
        if not text or (self._any is not None and not self._any.search(text)):
            return text  # one scan instead of one per rule: most text holds no secret
        for rule in self._rules:
            text = rule.sub(_mask, text)
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        """Text between NUL bytes is redacted (a log with one NUL in it is still a log); bytes
        that are not UTF-8 pass through as they are."""
        return b"\0".join(
            self.redact(part.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
            for part in data.split(b"\0")
        )

    def is_secret_key(self, key: str) -> bool:
        return looks_secret(key) or key.lower() in self._keys

    def redact_value(self, key: str, value: str) -> str:
        """A parameter, tag or variable: all of it when its name looks secret."""
        if self.is_secret_key(key) and value:
            return MASK
        return self.redact(value)


@functools.lru_cache(maxsize=8)
def _compiled(patterns: tuple[str, ...]) -> tuple[list[re.Pattern[str]], re.Pattern[str] | None]:
    """The rules and their joined pre-check, compiled once per process for each rule set."""
    return [re.compile(p) for p in patterns], _one_of(patterns)


def _one_of(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern that matches where any of ``patterns`` does (a pre-check), or None when they
    cannot be joined (a back-reference, a flag that cannot be scoped)."""
    parts = []
    for p in patterns:
        p = re.sub(r"\(\?P<\w+>", "(?:", p)  # named groups cannot repeat in one pattern
        flags = re.match(r"\(\?([a-zA-Z]+)\)", p)
        parts.append(f"(?{flags[1]}:{p[flags.end() :]})" if flags else f"(?:{p})")
    try:
        return re.compile("|".join(parts))
    except re.error:
        return None


def _mask(match: re.Match[str]) -> str:
    text = match.group(0)
    if "flag" in match.re.groupindex:
        return _mask_flag(match)
    if "secret" in match.re.groupindex and match.group("secret") is not None:
        start, end = match.span("secret")
        base = match.start(0)
        if match.group("secret") == MASK:
            return text
        return text[: start - base] + MASK + text[end - base :]
    return MASK


def _mask_flag(match: re.Match[str]) -> str:
    """``--db-password VALUE``: masked only when the keyword is part of a ``--`` option."""
    text, start = match.string, match.start()
    begin = start
    while begin > 0 and start - begin < 64 and not text[begin - 1].isspace():
        begin -= 1
    if not text.startswith("--", begin):
        return match.group(0)
    s, e = match.span("flag")
    return text[start:s] + MASK + text[e : match.end()]
