"""The environment a reproduction's re-run gets: yours, less what would let someone else's code
act as you.

A reproduction runs a recorded command and patch, which may be a teammate's (or anyone's who can
push to the remote). Withheld, by name or by value:

- every ``TETHER_*`` variable (tokens, the keys folder, the signing key and its passphrase), but
  the two that only describe the machine (``TETHER_CONTAINER_IMAGE``/``_DIGEST``);
- signing-key paths and agents: a name that says signing key, key file/path, keys folder or
  keyring, ``GNUPGHOME``, ``SSH_AUTH_SOCK``, and any value that points into the keys folder;
- cloud and service credentials: ``AWS_*``, ``AZURE_*``, ``GOOGLE_*``, ``CLOUDSDK_*``, ... (but
  their CA bundles) and the named tokens of :data:`CREDENTIALS` (``OPENAI_API_KEY``,
  ``HF_TOKEN``, ``GITHUB_TOKEN``...);
- what the redaction rules call secret: a name :func:`tether.redact.looks_secret` (or the
  project's ``[redact] keys``) flags, a value the :class:`~tether.redact.Redactor` would mask;
- a name with a credential's part (``KEY``, ``CREDS``, ``PASS``, ``PW``, ``PWD``, ``DSN``,
  ``TOKEN``...: ``B2_APPLICATION_KEY``, ``SENTRY_DSN``), and a random-looking value of 20
  characters or more under any name, but the folder variables (``PWD`` itself), ``PYTHON*``,
  ``CUDA*``, locale and CA-bundle variables, which are kept.

``--pass-env NAME`` keeps one anyway. PATH, HOME, LANG, CA bundles and the rest stay, so an
ordinary run still runs. Only names are ever reported; the keys folder's path is computed, never
read. A variable withheld is no likely cause of a difference: the verdict says it was withheld.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from tether.redact import Redactor, looks_random
from tether.runs.compare import EnvDiff, RunDiff, listed
from tether.signing import default_keys_dir

# describe the machine, hold no credential: the re-run's record needs them as the original had
_TETHER_KEPT = frozenset({"TETHER_CONTAINER_IMAGE", "TETHER_CONTAINER_DIGEST"})

# families whose members are credentials or point at them (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE,
# AZURE_CLIENT_ID, CLOUDSDK_CONFIG, ...): a region among them costs little to lose
CLOUD_PREFIXES = (
    "AWS_",
    "AZURE_",
    "ARM_",
    "GOOGLE_",
    "GCLOUD_",
    "CLOUDSDK_",
    "ALIBABA_CLOUD_",
    "OCI_CLI_",
    "DIGITALOCEAN_",
    "COSIGN_",
    "SIGSTORE_",
    "VAULT_",
)

# named credentials and what unlocks them, also where the name alone would not say so
CREDENTIALS = frozenset(
    {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "HF_TOKEN",
        "HF_TOKEN_PATH",
        "HUGGING_FACE_HUB_TOKEN",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GH_ENTERPRISE_TOKEN",
        "GITLAB_TOKEN",
        "CI_JOB_TOKEN",
        "CI_JOB_JWT",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_RUNTIME_TOKEN",
        "KUBECONFIG",
        "DOCKER_AUTH_CONFIG",
        "NETRC",
        "WANDB_API_KEY",
        "DATABRICKS_TOKEN",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_PASSWORD",
        "TWINE_PASSWORD",
        "NPM_TOKEN",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
    }
)

# signing keys and the agents that sign with them
_KEY_PATH = re.compile(
    r"(?i)(?:sign(?:ing)?[_-]?key|key[_-]?(?:file|path)|keys?[_-]?dir|keyfile|keyring"
    r"|gnupghome|gpg[_-]?agent|ssh[_-]?auth[_-]?sock|ssh[_-]?agent)"
)

# trust anchors (CA bundles and folders): HTTPS needs them, and a certificate is no secret
_CERTS = re.compile(
    r"(?i)(?:ca[_-]?bundle|ca[_-]?certs?|cainfo|capath|ssl[_-]?cert|roots[_-]?file"
    r"|[_-]cert(?:[_-]?(?:file|dir|path))?$)"
)

# never judged by value: an ordinary run needs them, and none of them is a credential
_ESSENTIAL = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TERM",
        "TMPDIR",
        "TZ",
        "PWD",  # the current folder (its name holds PWD, as a password's may)
        "OLDPWD",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "HOSTNAME",
        "DISPLAY",
        "LD_LIBRARY_PATH",
    }
)
# families an ordinary run needs, not judged by value (a GPU's UUID looks random)
_ESSENTIAL_PREFIXES = ("LC_", "PYTHON", "CUDA", "NVIDIA_", "XDG_", "OMP_", "MKL_")

# a name part that says credential (B2_APPLICATION_KEY, KAGGLE_KEY, MY_SVC_CREDS, DB_PASS,
# SMTP_PW, SENTRY_DSN), as a whole part: KEYTIMEOUT is no key
_SECRET_PARTS = frozenset(
    {
        "KEY",
        "KEYS",
        "APIKEY",
        "CRED",
        "CREDS",
        "CREDENTIAL",
        "CREDENTIALS",
        "PASS",
        "PASSWD",
        "PASSWORD",
        "PASSPHRASE",
        "PW",
        "PWD",
        "DSN",
        "SECRET",
        "SECRETS",
        "TOKEN",
        "TOKENS",
        "AUTH",
        "COOKIE",
    }
)
_PARTS = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_.~-]+")
_ID_NAME = re.compile(r"(?i)(?:^|[_-])(?:[A-Z]*UU|[A-Z]*U|G)?ID$")
_HEX_ID = re.compile(r"[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}|[0-9a-fA-F]{20,64}")
RANDOM_LENGTH = 20  # a random-looking value this long or longer is taken for a credential


@dataclass(frozen=True)
class Scrubbed:
    kept: dict[str, str]
    withheld: list[str] = field(default_factory=list)  # names only, sorted
    unknown: list[str] = field(default_factory=list)  # --pass-env names not set here


def scrub(
    environ: Mapping[str, str],
    redactor: Redactor,
    pass_env: Iterable[str] = (),
) -> Scrubbed:
    """``environ`` split into what a re-run gets and the names it does not."""
    passed = set(pass_env)
    keys = os.path.normpath(str(default_keys_dir(environ)))
    kept: dict[str, str] = {}
    withheld = []
    for name, value in environ.items():
        if name in passed or not _withheld(name, value, redactor, keys):
            kept[name] = value
        else:
            withheld.append(name)
    return Scrubbed(kept, sorted(withheld), sorted(n for n in passed if n not in environ))


def _withheld(name: str, value: str, redactor: Redactor, keys: str) -> bool:
    upper = name.upper()
    if upper.startswith("TETHER_"):
        return upper not in _TETHER_KEPT
    if redactor.is_secret_key(name) or _KEY_PATH.search(name):
        return True
    if (upper.startswith(CLOUD_PREFIXES) and not _CERTS.search(name)) or upper in CREDENTIALS:
        return True
    if upper in _ESSENTIAL:
        return False
    if any(p.upper() in _SECRET_PARTS for p in _PARTS.split(name)):
        return True
    if upper.startswith(_ESSENTIAL_PREFIXES) or _CERTS.search(name):
        return False
    return redactor.redact(value) != value or _into(value, keys) or _random(name, value)


def _random(name: str, value: str) -> bool:
    """A value shaped like a generated credential (:func:`tether.redact.looks_random`), long
    enough to be one and made of a token's characters only (base64, URL-safe, hex); a path,
    URL or setting (``a.b+=c;d=*``) is not, nor a hex id a name says is one
    (``INVOCATION_ID``, ``PYTEST_XDIST_TESTRUNUID``)."""
    value = value.strip()
    if len(value) < RANDOM_LENGTH or value.startswith(("/", "~", ".")):
        return False
    if _ID_NAME.search(name) and _HEX_ID.fullmatch(value):
        return False
    return bool(_TOKEN.fullmatch(value)) and looks_random(value)


def _into(value: str, folder: str) -> bool:
    """A value (one path or a path list) naming ``folder`` or something in it."""
    if os.sep not in value:
        return False
    for part in value.split(os.pathsep):
        path = os.path.normpath(os.path.expanduser(part.strip()))
        if path == folder or path.startswith(folder.rstrip(os.sep) + os.sep):
            return True
    return False


def for_pip(scrubbed: Scrubbed, environ: Mapping[str, str]) -> dict[str, str]:
    """What pip gets when it builds a fresh environment: the re-run's variables and your own
    ``PIP_*`` settings (your index, its credentials, certificates, find-links)."""
    return {**scrubbed.kept, **{k: v for k, v in environ.items() if k.startswith("PIP_")}}


@contextmanager
def applied(scrubbed: Scrubbed) -> Iterator[None]:
    """This process's environment is ``scrubbed.kept`` meanwhile (every command the re-run
    starts, a pipeline's stages too, inherits it); what was there is restored after."""
    before = dict(os.environ)
    os.environ.clear()
    os.environ.update(scrubbed.kept)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


def not_blamed(explanation: RunDiff | None, drift: EnvDiff | None, withheld: Iterable[str]) -> None:
    """The variables withheld from the re-run are set in the original only, as the comparison
    says; named as withheld rather than ranked as a likely cause (the verdict lists them)."""
    held = set(withheld)
    if drift is not None:
        drift.names_a = [n for n in drift.names_a if n not in held]
    if explanation is None:
        return
    env, cause = explanation.env, "environment variables set in A only: "
    gone = [n for n in env.names_a if n in held]
    if not gone:
        return
    env.names_a = [n for n in env.names_a if n not in held]
    at = next((i for i, c in enumerate(explanation.causes) if c.startswith(cause)), None)
    if at is not None:
        del explanation.causes[at]
    if env.names_a and at is not None:
        explanation.causes.insert(at, cause + listed(env.names_a))
    explanation.notes.append(
        f"{listed(gone)} withheld from the re-run, so set in A only: not ranked; pass "
        "--pass-env NAME if the result depends on one"
    )
