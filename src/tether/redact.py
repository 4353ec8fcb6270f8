"""Secret redaction: what looks like a credential never reaches a record, a log, a diff or a ledger,
and what is ordinary code (``pad_token_id = tokenizer.eos_token_id``, ``eos_token = "</s>"``)
passes untouched, so a recorded patch still rebuilds the code that ran.

Values are judged by their shape, not by a variable's name alone:

- known token formats (AWS, GCP service-account keys, GitHub, Slack, Stripe, OpenAI, Hugging
  Face, JWTs, PEM private keys, URLs with a password, ``Authorization`` headers) are masked
  wherever they stand;
- in a ``name = value`` / ``name: value`` / ``--name value`` a secret-looking name masks the value
  only when it is a literal (a quoted string, or a bare word where env, shell, YAML or a command
  line make it one) that looks like a credential: random-looking (long, mixed, high entropy),
  or any literal at all for the strongest names (password, secret, api_key, ...). Code
  (``os.environ["X"]``, ``cfg.password``, a call, a keyword argument) and placeholders
  (``${VAR}``, ``<...>``, ``None``, numbers) are never masked.

Users add rules in ``tether.toml`` (``[redact] patterns = [...]``), name extra secret-looking
parameter keys (``[redact] keys = [...]``) and exempt what is no secret (``[redact] allow =
[...]``: a match of an allowed pattern is never masked). Every pattern is bounded or consumed
once, so redaction stays linear in the text's length.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tether._secret_rules import (
    BUILTIN_RULES,
    LITERAL_RULES,
    PASSWORD_KEY,
    SECRET_GROUP,
    Rule,
    looks_secret,
    mask_span,
    option_strength,
)
from tether._secret_shapes import (
    CODE,
    MASK,
    SECRET_FILES,
    about_a_secret,
    is_config_file,
    is_placeholder,
    looks_like_secret_file,
    looks_random,
    words,
)

__all__ = [
    "BUILTIN_RULES",
    "MASK",
    "SECRET_FILES",
    "Masked",
    "Redactor",
    "Rule",
    "is_config_file",
    "is_placeholder",
    "looks_like_secret_file",
    "looks_random",
    "looks_secret",
]


@dataclass(frozen=True)
class Masked:
    """One mask: the line it is on (0-based, in the text given) and the rule that made it."""

    line: int
    rule: str


@dataclass
class Redactor:
    """Applies every rule; ``redact`` is idempotent (a masked value stays masked)."""

    extra_patterns: Iterable[str] = ()
    extra_keys: Iterable[str] = ()
    allow: Iterable[str] = ()
    _rules: list[tuple[Rule, re.Pattern[str]]] = field(init=False, repr=False)
    _literal: list[tuple[Rule, re.Pattern[str]]] = field(init=False, repr=False)
    _user: list[tuple[Rule, re.Pattern[str]]] = field(init=False, repr=False)
    _any: re.Pattern[str] | None = field(init=False, repr=False)
    _keys: set[str] = field(init=False, repr=False)
    _allow: list[re.Pattern[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rules, _ = _compiled(BUILTIN_RULES)
        self._literal, _ = _compiled(LITERAL_RULES)
        user = tuple(
            Rule(f"redact.patterns[{i}]", p, SECRET_GROUP if "(?P<secret>" in p else None, 0)
            for i, p in enumerate(self.extra_patterns)
        )
        self._user, self._any = _compiled(user) if user else ([], None)
        self._keys = {k.lower() for k in self.extra_keys}
        self._allow = [re.compile(p) for p in self.allow]

    def redact(self, text: str) -> str:
        return self.redact_lines(text)[0]

    def redact_lines(self, text: str, *, literal: bool = False) -> tuple[str, list[Masked]]:
        """The text redacted, and each mask made (its line and rule). A mask never removes a
        line break, so line ``i`` of the result is line ``i`` of ``text``, masked. ``literal``:
        the text is config (INI, .env), where a bare value is a literal, never a variable.

        The built-in rules look at one line at a time (a private key block at the lines from
        its BEGIN to its END), so they run only on the lines where a fast scan for their words
        found one: most text holds none, and costs that one scan."""
        if not text:
            return text, []
        masked: list[Masked] = []
        runs = _candidate_lines(text)
        if runs:
            lines = text.split("\n")
            for first, last in runs:
                window = "\n".join(lines[first : last + 1])
                new, found = self._settle(self._literal if literal else self._rules, window)
                if new != window:
                    lines[first : last + 1] = new.split("\n")
                    masked += [Masked(first + m.line, m.rule) for m in found]
            text = "\n".join(lines)
        if self._user and (self._any is None or self._any.search(text)):
            text, found = self._settle(self._user, text)
            masked += found
        return text, masked

    def _settle(
        self, rules: list[tuple[Rule, re.Pattern[str]]], text: str
    ) -> tuple[str, list[Masked]]:
        masked: list[Masked] = []
        for _ in range(4):  # a mask can, rarely, make a match for an earlier rule: settle
            before = text
            for rule, pattern in rules:
                text = self._apply(rule, pattern, text, masked)
            if text == before:
                break
        return text, masked

    def _apply(self, rule: Rule, pattern: re.Pattern[str], text: str, masked: list[Masked]) -> str:
        out: list[str] = []
        pos = 0
        allowed: list[tuple[int, int]] | None = None
        breaks: list[int] | None = None
        for m in pattern.finditer(text):
            span = rule.judge(m) if rule.judge is not None else m.span()
            if span is None or span[0] < pos or span[0] == span[1]:
                continue
            start, end = span
            old = text[start:end]
            new = mask_span(old)
            if new == old:
                continue
            if self._allow:
                allowed = allowed if allowed is not None else self._allowed(text)
                if any(a < end and start < b for a, b in allowed):
                    continue
            breaks = breaks if breaks is not None else _line_breaks(text)
            line = bisect.bisect_left(breaks, start)  # the line breaks before it
            pairs = zip(old.split("\n"), new.split("\n"), strict=True)
            masked.extend(Masked(line + i, rule.name) for i, (a, b) in enumerate(pairs) if a != b)
            out += (text[pos:start], new)
            pos = end
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)

    def _allowed(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for p in self._allow for m in p.finditer(text)]

    def redact_bytes(self, data: bytes) -> bytes:
        """Text between NUL bytes is redacted (a log with one NUL in it is still a log); bytes
        that are not UTF-8 pass through as they are."""
        return b"\0".join(
            self.redact(part.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
            for part in data.split(b"\0")
        )

    def is_secret_key(self, key: str) -> bool:
        return looks_secret(key) or key.lower() in self._keys

    def is_secret_option(self, name: str) -> bool:
        """A command line option's or a parameter's name that may hold a credential:
        ``--db-pass``, ``--pw``, ``--wandb-key``, ``--kaggle_key``, ``--creds`` too."""
        return self.is_secret_key(name) or option_strength(name) is not None

    def is_allowed(self, value: str) -> bool:
        return any(p.search(value) for p in self._allow)

    def redact_value(self, key: str, value: str) -> str:
        """A parameter, tag or variable: all of it when its name looks secret, unless the value
        is code or a stand-in (``tokenizer.eos_token``, ``"</s>"``, ``${VAR}``; a number unless
        the name says password), or allowed."""
        strength = option_strength(key)
        if key.lower() in self._keys:
            secret = bool(value)
        elif strength == "key" and not looks_secret(key):  # `--sort-key name` is no secret
            secret = looks_random(value) and not is_placeholder(value)
        elif strength == "pw":
            secret = not is_placeholder(value) and not CODE.search(value.strip())
        else:
            password = PASSWORD_KEY.search(key) is not None  # a PIN is a number
            secret = (
                looks_secret(key)
                and not about_a_secret(key)
                and not is_placeholder(value, quoted=password)
                and not (password and CODE.search(value.strip()))
            )
        if secret and not self.is_allowed(value):
            return MASK
        return self.redact(value)


# Every built-in rule's match holds one of these words (in any case): the lines holding none are
# never looked at again. bytes.find is the fastest scan Python has (a regex alternation of them
# is several times slower), and lower() of bytes folds ASCII only, keeping every offset.
_NEEDLES = tuple(
    w.encode()
    for w in words(
        "passw passphrase secret credential token apikey api_key api-key accesskey access_key "
        "access-key privatekey private_key private-key authorization bearer basic :// "
        "-----begin akia asia aroa aida agpa anpa anva aipa aiza ghp_ gho_ ghu_ ghs_ ghr_ "
        "github_pat_ xox hooks.slack sk_live sk_test rk_live rk_test sk- hf_ tth_ eyj aws "
        "glpat- gldt- glrt- glptt- glcbt- glsoat- hvs. hvb. hvr. npm_ pypi-age sg. r8_ "
        'accountkey "auth" username mysql sshpass curl'
    )
)
_PEM_REACH = 16384 + 128  # the private-key rule's bound on a block, and its END line


def _candidate_lines(text: str) -> list[tuple[int, int]]:
    """Runs of lines (first, last; 0-based) where a built-in rule could match, merged."""
    low = text.encode("utf-8", "surrogatepass").lower()
    hits: list[tuple[int, int]] = []
    ends = _find_all(low, b"-----end") if b"-----begin" in low else []
    blocks: dict[int, int] = {}  # a line's start -> where its YAML block (`password: |`) ends
    breaks = _find_all(low, b"\n") if b"|" in low or b">" in low else []
    for needle in _NEEDLES:
        for at in _find_all(low, needle):
            end = at
            if needle == b"-----begin":  # the block reaches to its END line
                i = bisect.bisect_left(ends, at)
                end = ends[i] if i < len(ends) and ends[i] - at <= _PEM_REACH else at
            else:
                end = max(end, _block_end(low, at, breaks, blocks)) if breaks else end
            hits.append((at, end))
    if not hits:
        return []
    hits.sort()
    runs: list[tuple[int, int]] = []
    line, pos = 0, 0
    for start, end in hits:
        line += low.count(b"\n", pos, start)
        pos = start
        last = line + low.count(b"\n", start, end)
        if runs and line <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], max(runs[-1][1], last))
        else:
            runs.append((line, last))
    return runs


_BLOCK_HEAD = re.compile(rb":[ \t]{0,8}[|>][-+0-9]{0,2}[ \t]{0,8}\r?\Z")
_BLOCK_REACH = 16384


def _block_end(low: bytes, at: int, breaks: list[int], seen: dict[int, int]) -> int:
    """Where the YAML block scalar begun on ``at``'s line (``password: |``) ends, or ``at``:
    each line is looked at once, and a block read no further than a bound."""
    i = bisect.bisect_left(breaks, at)
    line = breaks[i - 1] + 1 if i > 0 else 0
    if line in seen:
        return seen[line]
    stop = breaks[i] if i < len(breaks) else -1
    end = at
    if stop >= 0 and _BLOCK_HEAD.search(low, max(line, stop - 64), stop):
        head = low[line:stop]
        indent = len(head) - len(head.lstrip(b" \t"))
        pos = stop + 1
        while pos < len(low) and pos - stop < _BLOCK_REACH:
            nl = low.find(b"\n", pos)
            nl = len(low) if nl < 0 else nl
            row = low[pos:nl]
            body = row.lstrip(b" \t")
            if body.strip() and len(row) - len(body) <= indent:
                break
            end = pos
            pos = nl + 1
    seen[line] = end
    return end


def _find_all(data: bytes, needle: bytes) -> list[int]:
    found = []
    at = data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def _line_breaks(text: str) -> list[int]:
    return [m.start() for m in re.finditer("\n", text)]


@functools.lru_cache(maxsize=8)
def _compiled(
    rules: tuple[Rule, ...],
) -> tuple[list[tuple[Rule, re.Pattern[str]]], re.Pattern[str] | None]:
    """The rules and their joined pre-check, compiled once per process for each rule set."""
    compiled = [(r, re.compile(r.pattern, r.flags)) for r in rules]
    return compiled, _one_of(r.pattern for r in rules)


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
