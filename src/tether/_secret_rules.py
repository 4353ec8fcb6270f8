"""The built-in redaction rules: the shapes of known tokens, secret-looking names and the
judgements of what after them is a credential. :class:`tether.redact.Redactor` applies them."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

from tether._secret_shapes import (
    CODE,
    MASK,
    TYPES,
    about_a_secret,
    entropy,
    is_placeholder,
    looks_random,
)

# `PGPASSWORD`, `DB_PASSWORD`, `api_token` are secret names; `max_tokens` and `author` are not: the
# short words must stand alone as a name part, the long ones may carry a prefix
_KEYWORDS = (
    r"(?:(?:passw(?:or)?d|secret|credentials?|authorization)(?![a-z])"
    r"|(?<![a-z])(?:token|api[_-]?key|apikey|access[_-]?key|private[_-]?key)(?![a-z]))"
)
_SECRET_KEY = re.compile(rf"(?i){_KEYWORDS}")

# The names a value is judged by, by strength: a password's value is secret whatever it looks
# like (spaces too); the other strong names' any literal word; a token's only a random-looking one
# (`eos_token`, `pad_token` hold "</s>" and "<pad>")
_NAME = (
    r"(?:(?P<pw>passw(?:or)?d|passphrase)|(?P<strong>secret[_-]?(?:access[_-]?)?key|secret|credentials?)"
    r"|(?<![a-z])(?P<key>api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|(?:access|auth|refresh|session|bearer|api|id)[_-]?token)"
    r"|(?<![a-z])(?P<weak>token))(?![a-z])"
)
# quoted (r"", b"", f"" too), a string whose quotes are escaped (JSON inside JSON), or a bare
# word up to a space
_VALUE = (
    r"(?:\\(?P<eq>[\"'])(?P<ev>[^\"'\\\n]*)"
    r"|(?:[rRbBuUfF]{1,2}(?=[\"']))?(?:\"(?P<dq>(?:[^\"\\\n]|\\.)*)"
    r"|'(?P<sq>(?:[^'\\\n]|\\.)*))"
    r"|(?P<bare>[^\s\"',;\\]+))"
)
# an annotation (`password: str = ...`) is skipped to reach the value after its `=`
_ASSIGN = (
    rf"(?ai){_NAME}(?P<tail>[\w.-]{{0,64}})(?P<kq>\\?[\"'])?\]?[ \t]{{0,8}}"
    rf"(?:(?P<ann>:[ \t]{{0,8}}[A-Za-z_][\w.\[\]|, ]{{0,64}})(?==))?"
    rf"(?P<sep>:|=(?!=))[ \t]{{0,8}}{_VALUE}"
)
# --api-key VALUE, -H "X-Api-Key VALUE": the value after a space (the rule checks for the --)
# `["--api-key", "VALUE"]` (a launch.json's args) too
_OPTION = (
    rf"(?ai){_NAME}(?P<tail>[\w-]{{0,64}})(?:[\"'][ \t]{{0,8}},[ \t]{{0,8}}|[ \t]{{1,8}})"
    rf"[\"']?(?P<flag>[^\s\"']+)"
)
_NAMED = re.compile(rf"(?ai){_NAME}")


_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_PROSE = re.compile(r"^[A-Za-z]{2,}\b")  # more words follow the value
_CONSTANT = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")  # OPENAI_API_KEY
_HUMPS = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # AWSSecretKey
_CLASS = re.compile(r"^(?:[A-Z][a-z]+)+$")  # a type: `credentials: Credentials`
_PY_NAME = re.compile(r"^(?:[a-z_][a-z0-9_]*|[A-Z_][A-Z0-9_]*|(?:[A-Z][a-z]+)+)$")
PASSWORD_KEY = re.compile(r"(?i)passw(?:or)?d|passphrase|(?<![a-z])pin(?![a-z])")
_STRENGTHS = ("pw", "strong", "key", "weak")


def looks_secret(key: str) -> bool:
    """A name (a parameter, a variable) that says its value is a credential, by the built-in
    keywords; :meth:`Redactor.is_secret_key` adds the user's keys."""
    return bool(_SECRET_KEY.search(key))


# A mask covers a span; a span over several lines keeps its line breaks (and a diff line's
# leading + - or space), so a masked patch keeps its shape and its line numbers
def mask_span(span: str) -> str:
    if "\n" not in span:
        return MASK
    lines = span.split("\n")
    out = [MASK if lines[0] else ""]
    for line in lines[1:]:
        lead = line[:1] if line[:1] in ("+", "-", " ") else ""
        out.append(lead + (MASK if line[len(lead) :] else ""))
    return "\n".join(out)


Judge = Callable[[re.Match[str]], tuple[int, int] | None]


@dataclass(frozen=True)
class Rule:
    """A pattern, and what of a match to mask: ``judge`` gives the span (None: nothing)."""

    name: str
    pattern: str
    judge: Judge | None = None
    flags: int = re.ASCII  # the built-in rules: no Unicode case folding (a long s is no s)


def _group(name: str, check: Callable[[str], bool] | None = None) -> Judge:
    def judge(m: re.Match[str]) -> tuple[int, int] | None:
        value = m.group(name)
        if value is None or (check is not None and not check(value)):
            return None
        return m.span(name)

    return judge


def _basic(value: str) -> bool:
    """``Basic dXNlcjpwYXNz``: base64 of ``user:password``, not the word after "basic"."""
    if not any(c.isupper() or c.isdigit() for c in value):
        return False
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in raw and all(32 <= b < 127 for b in raw)


def _bearer(value: str) -> bool:
    """A token after "Bearer", not a word of prose ("bearer authentication")."""
    if is_placeholder(value):
        return False
    return not value.isalpha() or (len(value) >= 12 and entropy(value) >= 3.5)


def _openai(m: re.Match[str]) -> tuple[int, int] | None:
    return m.span() if any(c.isdigit() for c in m["secret"]) else None


_NAME_END = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


def _name_start(text: str, at: int) -> int:
    """Where the name holding the keyword at ``at`` starts (``DB_`` of ``DB_PASSWORD``)."""
    found = _NAME_END.search(text, max(0, at - 64), at)
    return found.start() if found else at


def _in_string(text: str, start: int, quote: str) -> bool:
    """Whether ``start`` lies inside a ``quote`` string opened earlier on its line (an odd number
    of unescaped quotes before it): a quote after the name then closes that string."""
    line = text.rfind("\n", max(0, start - 256), start) + 1 or max(0, start - 256)
    before = text[line:start].replace("\\\\", "").replace("\\" + quote, "")
    return before.count(quote) % 2 == 1


def _same_word(value: str, name: str) -> bool:
    def bare(s: str) -> str:
        return re.sub(r"[\W_]", "", s).lower()

    return bool(value) and bare(value) == bare(name)


def _strength(m: re.Match[str]) -> str:
    return next(g for g in _STRENGTHS if m[g])


def _credential(value: str, strength: str, *, quoted: bool) -> bool:
    """Whether a literal after a secret-looking name is a credential."""
    if is_placeholder(value, quoted=quoted):
        return False
    if strength == "weak":  # a token: `eos_token = "</s>"`, `token = "hello"`, `"a.b[-1].c"`
        return looks_random(value) and CODE.search(value) is None
    if looks_random(value):
        return True
    if _CONSTANT.match(value) or (_IDENT.match(value) and looks_secret(_HUMPS.sub("_", value))):
        return False  # a name: `SECRET_KEY = "AWS_SECRET_ACCESS_KEY"`, `KEY = "AWSSecretKey"`
    if any(c.isspace() for c in value):  # a passphrase; for an api key, a sentence is no key
        return strength == "pw" and len(value.split()) < 5 and not value.endswith(".")
    return strength == "pw" or len(value) >= 6  # `CREDENTIALS_LOGIN = "AD"`: a code


def _assignment(m: re.Match[str], literal: bool = False) -> tuple[int, int] | None:
    """``name = value``, ``name: value``: the value when it is a literal that looks like a
    credential (``literal``: a bare value is one, as in an INI or .env file)."""
    text = m.string
    name_at = _name_start(text, m.start())
    name = text[name_at : m.end("tail")]
    if about_a_secret(name) or text[name_at - 1 : name_at] in (":", "/"):
        return None  # `password_file = ...`; `arn:aws:...:secret:name`, a path
    if _same_word(m["ev"] or m["dq"] or m["sq"] or m["bare"] or "", name):
        return None  # PASSWORD = "password": a constant naming itself
    if m["ev"] is not None:  # db_password = \"hunter2\" inside a JSON string
        return m.span("ev") if _credential(m["ev"], _strength(m), quoted=True) else None
    for group, quote in (("dq", '"'), ("sq", "'")):
        if m[group] is None:
            continue
        # `"password=" + pw`: the quote closes the string the name stands in
        if _in_string(text, name_at - (1 if m["kq"] else 0), quote):
            return None
        return m.span(group) if _credential(m[group], _strength(m), quoted=True) else None
    value = m["bare"]
    after = text[m.end("bare") : m.end("bare") + 1]
    if after in ('"', "'"):  # `["env", "DB_PASSWORD=x"]`: the string holds all of it
        inside = _in_string(text, name_at - (1 if m["kq"] else 0), after)
        return m.span("bare") if inside and _credential(value, _strength(m), quoted=True) else None
    if not literal and _bare_is_code(m, name_at):
        return None  # a variable
    return m.span("bare") if _credential(value, _strength(m), quoted=literal) else None


def _literal_assignment(m: re.Match[str]) -> tuple[int, int] | None:
    return _assignment(m, literal=True)


def _bare_is_code(m: re.Match[str], name_at: int) -> bool:
    """A bare word after the name is code in Python (a variable, an annotation, a keyword
    argument) and a literal in env, shell, YAML or INI syntax; told by what surrounds it."""
    text, value = m.string, m["bare"]
    if m["ann"] or value[-1] in ")]}":
        return True  # `password: str = password`, `f(password: str)`
    rest = text[m.end("bare") : m.end("bare") + 64].lstrip(" \t")
    before = text[max(0, name_at - 64) : name_at].rstrip(" \t")
    if before.endswith((":param", ":type", ":arg", ":ivar", ":keyword", "@param")):
        return True  # a docstring's field: `:param password: the database's password`
    if m["sep"] == ":" and value.isalpha() and _PROSE.match(rest):
        return True  # prose: `(no password: put that in tether.toml)`
    if m["sep"] == ":":  # YAML or a header; or a Python annotation, a dict with a variable
        typed = value.lower() in TYPES or _CLASS.match(value) is not None
        return bool(m["kq"]) or typed or rest[:1] in ("=", ",", ")", "|", "]")
    if m["kq"]:  # config["password"] = x
        return True
    if before[-1:] in ("(", ",") or rest[:1] in (",", ")"):  # a keyword argument
        return True
    # `password = x`, spaced: Python (a variable), TOML (no bare strings) or INI; a value
    # shaped as no Python name is (`Hunter2Rocks`: mixed case and digits) is INI's literal
    between = text[m.end("tail") : m.start("bare")]
    spaced = between.strip() != between
    return (
        spaced
        and _IDENT.match(value) is not None
        and _PY_NAME.match(value) is not None
        and not looks_random(value)
    )


def _option(m: re.Match[str]) -> tuple[int, int] | None:
    """``--db-password VALUE``: masked only when the name is part of a ``--`` option."""
    text, start = m.string, m.start()
    begin = start
    while begin > 0 and start - begin < 64 and not text[begin - 1].isspace():
        begin -= 1
    while begin < start and text[begin] in "[(\"'":  # `["--api-key", "VALUE"]`
        begin += 1
    if not text.startswith("--", begin) or about_a_secret(text[begin : m.end("tail")]):
        return None
    return m.span("flag") if _credential(m["flag"], _strength(m), quoted=True) else None


def _auth_header(m: re.Match[str]) -> tuple[int, int] | None:
    """``Authorization: <scheme> VALUE``; ``{"Authorization": header}`` is code."""
    value = m["secret"]
    if is_placeholder(value, quoted=bool(m["open"] or m["scheme"])):
        return None
    if not m["open"] and not m["scheme"] and _IDENT.match(value) and not looks_random(value):
        return None
    return m.span("secret")


def _aws_key_id(m: re.Match[str]) -> tuple[int, int] | None:
    """An AWS key id has digits, or stands after a name saying it is a key: a word or a protein
    (``ASIAPACIFICSOUTHEAST``, ``AKIAGLLVAVLLLAPSAAQA``) is none."""
    if any(c.isdigit() for c in m[0]):
        return m.span()
    line = m.string.rfind("\n", 0, m.start()) + 1
    return m.span() if "key" in m.string[max(line, m.start() - 64) : m.start()].lower() else None


def _named_value(m: re.Match[str]) -> tuple[int, int] | None:
    """``ENV DB_PASSWORD hunter2``, ``<password>hunter2</password>``: the value, when the name
    says secret and the value looks like a credential."""
    name = m["name"]
    found = _NAMED.search(name)
    if found is None or about_a_secret(name):
        return None
    value = m["value"]
    start, end = m.span("value")
    if value[:1] in ('"', "'") and value[-1:] == value[:1] and len(value) >= 2:
        value, start, end = value[1:-1], start + 1, end - 1
    return (start, end) if _credential(value.strip(), _strength(found), quoted=True) else None


def _yaml_block(m: re.Match[str]) -> tuple[int, int] | None:
    """``password: |`` and the more indented lines after it: those lines."""
    text = m.string
    name_at = _name_start(text, m.start())
    if _strength(m) == "weak" or about_a_secret(text[name_at : m.end("tail")]):
        return None
    line = text.rfind("\n", 0, name_at) + 1
    indent = len(text[line:name_at]) - len(text[line:name_at].lstrip(" \t"))
    start = end = None
    pos = m.end()
    while pos < len(text):
        nl = text.find("\n", pos)
        stop = len(text) if nl < 0 else nl
        row = text[pos:stop]
        body = row.lstrip(" \t")
        if body and len(row) - len(body) <= indent:
            break
        if body:
            start = pos + len(row) - len(body) if start is None else start
            end = stop
        pos = stop + 1
    if start is None or end is None or is_placeholder(text[start:end]):
        return None
    return start, end


# Every pattern starts at a literal or a word boundary and bounds its repeats (or consumes what it
# repeats over once), so redaction stays linear: a 100 kB line of one letter (a data file in a
# diff) must not backtrack quadratically.
BUILTIN_RULES = (
    Rule(
        "private-key-block",
        # the body (base64, headers, \n escapes) stops at the next -----: linear on a text of
        # BEGIN lines and no END
        r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"(?P<body>(?:[A-Za-z0-9+/=\s\\:,.]|-(?!----)){0,16384}?)"
        r"-----END [A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----",
        _group("body"),
    ),
    Rule(
        "aws-access-key-id",
        r"\b(?:AKIA|ASIA|AROA|AIDA|AGPA|ANPA|ANVA|AIPA)[A-Z2-7]{16}\b",
        _aws_key_id,
    ),
    Rule(
        "aws-secret-access-key",
        r"(?ai)(?<![a-z0-9])aws[\w.-]{0,20}secret[\w.-]{0,20}\\?[\"']?[ \t]{0,8}[:=][ \t]{0,8}"
        r"\\?[\"']?"
        r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        _group("secret"),
    ),
    Rule(
        "gcp-private-key-id",
        r"\"private_key_id\\?\"[ \t]{0,8}:[ \t]{0,8}\\?\"(?P<secret>[0-9a-f]{40})\b",
        _group("secret"),
    ),
    Rule("gcp-api-key", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    Rule("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})\b"),
    Rule("slack-token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}\b"),
    Rule(
        "slack-webhook",
        r"hooks\.slack\.com/services/(?P<secret>[A-Za-z0-9_/]{20,})",
        _group("secret"),
    ),
    Rule("stripe-key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}\b"),
    Rule(
        "openai-key",
        r"\bsk-(?P<secret>(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})\b",
        _openai,
    ),
    Rule("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    Rule("tether-token", r"\btth_[0-9a-f]{12}_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
    Rule("jwt", r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    Rule(
        "url-password",  # keep the user, hide the password
        r"\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^\s:/@]{0,256}:(?P<secret>[^\s@/]{1,256})@",
        _group("secret", lambda v: not is_placeholder(v)),
    ),
    Rule(
        "bearer-token",
        r"(?ai)\bbearer[ \t]{1,8}(?P<secret>[A-Za-z0-9._~+/=-]{8,4096})",
        _group("secret", _bearer),
    ),
    Rule(
        "basic-auth",
        r"(?ai)\bbasic[ \t]{1,8}(?P<secret>[A-Za-z0-9+/]{8,4096}={0,2})(?![A-Za-z0-9+/=])",
        _group("secret", _basic),
    ),
    Rule(
        "authorization-header",
        r"(?ai)\b(?:proxy-)?authorization\\?[\"']?[ \t]{0,8}[:=][ \t]{0,8}(?P<open>\\?[\"'])?"
        r"(?P<scheme>(?:bearer|basic|token|digest|negotiate|apikey)[ \t]{1,8})?"
        r"(?P<secret>[^\s\"',;\\)\]}]{1,4096})",
        _auth_header,
    ),
    Rule("gitlab-token", r"\bgl(?:pat|dt|rt|ptt|cbt|soat)-[A-Za-z0-9_-]{20,}"),
    Rule("vault-token", r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}"),
    Rule("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    Rule("pypi-token", r"\bpypi-AgE[A-Za-z0-9_-]{20,}"),
    Rule("sendgrid-key", r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}\b"),
    Rule("replicate-token", r"\br8_[A-Za-z0-9]{30,}\b"),
    Rule(
        "azure-account-key",
        r"(?ai)\b(?:AccountKey|SharedAccessKey)[ \t]{0,8}=[ \t]{0,8}"
        r"(?P<secret>[A-Za-z0-9+/]{20,1024}={0,2})",
        _group("secret", lambda v: not is_placeholder(v)),
    ),
    Rule(
        "docker-auth",
        r"\"auth\"[ \t]{0,8}:[ \t]{0,8}\"(?P<secret>[A-Za-z0-9+/]{8,4096}={0,2})\"",
        _group("secret", _basic),
    ),
    Rule(
        "kaggle-key",  # kaggle.json: {"username": ..., "key": "<32 hex>"}
        r"\"username\"[ \t]{0,8}:[ \t]{0,8}\"[^\"\n]{0,128}\"[ \t]{0,8},[ \t]{0,8}"
        r"\"key\"[ \t]{0,8}:[ \t]{0,8}\"(?P<secret>[0-9a-f]{32})\"",
        _group("secret"),
    ),
    Rule(
        "kaggle-key",
        r"\"key\"[ \t]{0,8}:[ \t]{0,8}\"(?P<secret>[0-9a-f]{32})\"[ \t]{0,8},[ \t]{0,8}"
        r"\"username\"",
        _group("secret"),
    ),
    Rule(
        "command-password",  # mysql -phunter2, sshpass -p hunter2, curl -u user:password
        r"\b(?:mysql(?:dump|admin|import|sh)?\b[^\n]{0,256}?[ \t]-p"
        r"|sshpass[ \t]{1,8}-p[ \t]{0,8}"
        r"|curl\b[^\n]{0,256}?[ \t](?:-u|--user)[ \t=]{1,8}[\"']?[^\s:\"'@]{1,64}:)"
        r"(?P<secret>[^\s\"'-][^\s\"']{0,255})",
        _group("secret", lambda v: not is_placeholder(v)),
    ),
    Rule(
        "secret-setting",  # Dockerfile: ENV DB_PASSWORD hunter2
        r"(?a)(?<![\w.])(?:ENV|ARG)[ \t]{1,8}(?P<name>[A-Za-z_][\w.-]{0,64})[ \t]{1,8}"
        r"(?P<value>[^\s=\"'][^\s\"']{0,255}|\"[^\"\n]{1,256}\"|'[^'\n]{1,256}')",
        _named_value,
    ),
    Rule(
        "secret-element",  # <password>hunter2</password>
        r"(?ai)<(?P<name>[\w:.-]{0,32}(?:passw|secret|api[_-]?key|apikey|token)[\w:.-]{0,32})>"
        r"(?P<value>[^<\n]{1,512})</",
        _named_value,
    ),
    Rule(
        "secret-block",  # password: |  and its indented lines
        rf"(?ai){_NAME}(?P<tail>[\w.-]{{0,64}})[\"']?[ \t]{{0,8}}:[ \t]{{0,8}}[|>][-+0-9]{{0,2}}"
        r"[ \t]{0,8}(?=\n)",
        _yaml_block,
    ),
    Rule("secret-assignment", _ASSIGN, _assignment),
    Rule("secret-option", _OPTION, _option),
)
# for a config file (INI, .env, ...): a bare value is a literal
LITERAL_RULES = tuple(
    Rule(r.name, r.pattern, _literal_assignment) if r.judge is _assignment else r
    for r in BUILTIN_RULES
)
BUILTIN_PATTERNS = tuple(r.pattern for r in BUILTIN_RULES)
SECRET_GROUP = _group("secret")  # a user's pattern with a `secret` group masks only that


_PW_PARTS = frozenset(("pass", "pw", "pwd", "passwd", "passphrase", "creds", "cred"))


def option_strength(name: str) -> str | None:
    """``db-pass``, ``pw``, ``creds``: "pw"; ``wandb-key``, ``kaggle_key``: "key"; else None.
    A name *about* a secret (``--key-file``, ``--pad-token-id``) is none."""
    if about_a_secret(name.strip("-")):
        return None
    parts = {p for p in re.split(r"[-_.]+", _HUMPS.sub("_", name.strip("-")).lower()) if p}
    if parts & _PW_PARTS:
        return "pw"
    return "key" if "key" in parts else None
