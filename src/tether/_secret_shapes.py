"""What a secret looks like: a value's shape (random-looking, a stand-in, code) and a file's name.

The judgements :mod:`tether.redact` applies to a value after a secret-looking name, kept apart
from its rules: a value is a credential by its shape, never by the name alone.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections import Counter

MASK = "***"


def words(text: str) -> list[str]:
    return text.split()


# the last part of a name that says the value is *about* a secret, not the secret:
# `password_file`, `api_key_env`, `pad_token_id`, `token_type`, `secret_name`
ABOUT = frozenset(
    words(
        "path file filename files dir directory env var variable name names id ids type types "
        "kind len length size count num max min limit field fields header prefix suffix format "
        "fmt pattern regex rule rules policy hint label prompt help message msg manager store "
        "backend provider source scope mount arn version ref url uri endpoint index idx mask "
        "masks used last age ttl expiry expires expiration timeout created updated changed "
        "required enabled ok valid reset rotated"
    )
)
TYPES = frozenset(
    words("str bytes int float bool object any secretstr secretbytes optional union path none")
)
_LITERAL_WORDS = frozenset(
    words(
        "none null nil true false yes no on off undefined nan inf n/a bearer basic token digest "
        "value string str text example placeholder changeme redacted hidden secret password "
        "passwd key dummy fake todo tbd xxx foo bar baz qux"
    )
)
# a stand-in written for a person to replace, or a test's value: `your-api-key`, `sk-...`,
# `sk-xxxxxxxx`, `dummy-key-for-tests`, `test-token`, `changeme`
_STAND_IN = re.compile(
    r"(?i)^your[-_ ]|^(?:dummy|example|test|placeholder|changeme|change[-_]me|replace[-_]?me)"
    r"(?:[-_ .]|$)"
    r"|(?:^|[-_ .])(?:dummy|example|placeholder|changeme)(?:$|[-_ .])|\.\.\.|\u2026|x{4,}"
)
_PLACEHOLDER = re.compile(
    r"""^(?:<[^<>]*>|\[[^\[\]]*\]|\{[^{}]*\}|\$\{.*\}|\$\(.*\)|\$[A-Za-z_]\w*|%\([\w.]+\)s|%s
       |(.)\1*|!\w.*|[&*]\w+)$""",
    re.VERBOSE | re.DOTALL,
)
_NUMBER = re.compile(r"^[-+]?(?:\d[\d_]*\.?\d*(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+)$")
_TEMPLATE = re.compile(r"\$\{|\$\(|\{\{|\{%|%\(\w+\)|\{[A-Za-z_][\w.]*\}|\{\}")
_PATH = re.compile(
    r"^(?:~|\.{1,2})?/[\w.\-/ ]*$"
    r"|^[\w.\-/]+\.(?:json|ya?ml|toml|ini|cfg|conf|txt|pem|key|p12|pfx|env|csv|gpg)$"
)
CODE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$|[(\[{]")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_WORDY = re.compile(r"^(?:[A-Za-z]{3,}|\d+)(?:[_.\-/:](?:[A-Za-z]{2,}|\d+))*$")


def entropy(text: str) -> float:
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def looks_random(value: str) -> bool:
    """A value shaped like a generated credential: long, no spaces, several character classes,
    high Shannon entropy, and not words joined by separators (``checkpoint_epoch_10``)."""
    n = len(value)
    if n < 16 or any(c.isspace() for c in value) or _WORDY.match(value):
        return False
    digits = any(c.isdigit() for c in value)
    lower, upper = any(c.islower() for c in value), any(c.isupper() for c in value)
    if _HEX.match(value):
        return n >= 32 and digits and (lower or upper)
    if not digits:  # letters only: CamelCase names are no keys, long random mixed case is
        return n >= 32 and lower and upper and entropy(value) >= 4.2
    if not (lower or upper):
        return False
    return entropy(value) >= min(3.5, math.log2(n) - 0.7)


def is_placeholder(value: str, *, quoted: bool = True) -> bool:
    """A stand-in, not a secret: ``${VAR}``, ``$VAR``, ``<your key>``, ``"</s>"``, ``[PAD]``,
    ``{name}``, ``None``, ``true``, a file's path, a value already masked; and, unquoted, a
    number or code (``os.environ[...]``, ``cfg.password``, a call)."""
    v = value.strip()
    if not v or MASK in v or not any(c.isalnum() for c in v):
        return True
    if _PLACEHOLDER.match(v) or _TEMPLATE.search(v) or v.lower() in _LITERAL_WORDS:
        return True
    if _STAND_IN.search(v):
        return True
    if _PATH.match(v) and not looks_random(v):
        return True
    return not quoted and (_NUMBER.match(v) is not None or CODE.search(v) is not None)


# Files whose name says they hold credentials; matched on the file name in any folder, in any case
SECRET_FILES = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".htpasswd",
    "credentials*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.ovpn",
    "*.tfvars",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "service-account*.json",
    "service_account*.json",
    "client_secret*.json",
    "secrets.json",
    "secrets.yaml",
    "secrets.yml",
    "secrets.toml",
    "kaggle.json",
)
# ... but a template to copy is none: `.env.example` holds stand-ins, and is meant to be committed
_TEMPLATES = (".example", ".sample", ".template", ".dist", ".tmpl", ".tpl", ".defaults")
# files where a bare value (`password = Hunter2Rocks`) is a literal, never a variable
_CONFIG = (".ini", ".cfg", ".cnf", ".conf", ".env", ".properties", ".envrc", ".pgpass", ".netrc")
# ... but source code is code: `credentials_helper.py` is no credential
_SOURCE = (".py", ".ipynb", ".md", ".rst", ".js", ".ts", ".java", ".go", ".rs", ".rb", ".r")


def looks_like_secret_file(path: str) -> bool:
    """Whether a file's name (``a/b/.env.local``, ``keys/id_ed25519``) says it holds secrets."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    if name.endswith(_SOURCE) and not name.startswith(".env"):
        return False
    if name.endswith(_TEMPLATES):
        return False
    return any(fnmatch.fnmatchcase(name, p) for p in SECRET_FILES)


def about_a_secret(name: str) -> bool:
    """``password_file``, ``api_key_env``, ``pad_token_id``: a name for something *about* a
    secret (where it is, what it is called), whose value is none."""
    parts = [p for p in re.split(r"[_.\-\s]", name.lower()) if p]
    return bool(parts) and parts[-1] in ABOUT


def is_config_file(path: str) -> bool:
    """Whether a file is config, not code (``my.cnf``, ``setup.cfg``, ``.env.local``): a bare
    value in it is a literal."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    return name.endswith(_CONFIG) or name.startswith(".env")
