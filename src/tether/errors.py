"""Every error Tether raises, in one tree.

::

    TetherError                      root; ``exit_code`` is what the CLI exits with (4)
    ├── UsageError                   a bad argument or a command that cannot apply here (2)
    │   └── QueryError               a run query that does not parse; points at the character
    ├── NotARepositoryError          not inside a git repository / Tether project
    ├── ConfigError                  unreadable config, unknown key, a secret in tether.toml
    │   └── PipelineError            a pipeline.yaml or pipeline.lock that cannot be run as written
    ├── FormatError                  an on-disk format that is corrupt or of an unknown version
    │   └── PointerError             a pointer file that cannot be read
    ├── PathError                    a path outside the repository or through an escaping symlink
    │   └── UnsafePathError          a path from content refused: .., .git, a collision, a symlink
    ├── ObjectError                  the object store
    │   ├── MissingObjectError       objects not in the cache (``tether pull`` fetches them)
    │   ├── CorruptObjectError       bytes that no longer match their id
    │   └── CacheWriteError          the cache folder is read-only or full
    ├── LockError                    another process holds a lock
    ├── GitError                     a git command failed
    ├── RemoteError                  a remote is unknown, unreachable or refused a write
    │   └── RetainedObjectsError     a remote gc done, but S3 Object Lock keeps some objects (3)
    ├── RunError                     a run that cannot be found, started, logged to or sealed
    │   ├── LaunchError              ``tether run``'s command could not start (127, 126, 125)
    │   ├── UnknownRunError          a run with no record here (a teammate's: fetch it first)
    │   └── NotConfirmedError        someone else's run not reproduced: no --yes, no terminal (3)
    ├── IndexStoreError              the SQL index cannot be opened or written (`tether reindex`)
    ├── PromptError                  a prompt that cannot be found, parsed, rendered or promoted
    ├── RegistryError                a model registry operation refused: names the rule
    ├── TrustError                   the root of trust refuses: another root, a key without the role
    ├── VerificationError            content checked and found unlike what was signed (1)
    │   └── SignatureError           an envelope that is malformed or not signed by a trusted key
    ├── SigningKeyError              a local private key that cannot be made, found or read
    └── ServerError                  the team server, from either side of the wire
        ├── AuthenticationError      no token, or one unknown, expired or revoked (HTTP 401)
        ├── PermissionDeniedError    a token whose role does not allow this (HTTP 403)
        ├── MissingProjectError      no such project on the server (404)
        ├── MissingRunError          no such run in the server's project (404)
        ├── MissingOnServerError     no such prompt version, artifact or metric there (404)
        ├── ConflictError            the write lost a race or contradicts what is stored (409)
        ├── PayloadTooLargeError     a request body over the server's limit (413)
        └── ServerUnavailableError   the server, its database or its store cannot answer (503)

Each message says what happened and what to do next. Third-party errors are translated at the
boundary with ``raise ... from``. The CLI maps an error to its ``exit_code`` in one place
(``tether.cli.main``); the whole table of exit codes is ``tether.cli.exitcodes``.
"""

from __future__ import annotations

from collections.abc import Iterable


class TetherError(Exception):
    """Root of every error Tether raises on purpose: data, state, config, git, remote (exit 4)."""

    exit_code = 4


class UsageError(TetherError):
    """A bad argument, option or value on the command line (exit 2)."""

    exit_code = 2


class QueryError(UsageError):
    """A query that does not parse; the message repeats it with a caret under ``position``."""

    def __init__(self, message: str, query: str, position: int) -> None:
        self.query = query
        self.position = position
        caret = " " * position + "^"
        super().__init__(f"{message} (at character {position + 1})\n  {query}\n  {caret}")


class NotARepositoryError(TetherError):
    pass


class ConfigError(TetherError):
    pass


class PipelineError(ConfigError):
    """A pipeline.yaml that cannot be run as written."""


class FormatError(TetherError):
    pass


class PointerError(FormatError):
    pass


class PathError(TetherError):
    pass


class UnsafePathError(PathError):
    """A path from content (a manifest, a pointer, a record, a bundle) that Tether will not write:
    it leaves its folder, names ``.git`` or ``.tether``, or collides with another."""


class ObjectError(TetherError):
    pass


class MissingObjectError(ObjectError):
    def __init__(self, ids: Iterable[str], hint: str = "run `tether pull` to fetch them") -> None:
        self.ids = sorted(set(ids))
        n = len(self.ids)
        shown = ", ".join(i[:19] for i in self.ids[:3]) + (" …" if n > 3 else "")
        noun = "object is" if n == 1 else "objects are"
        super().__init__(f"{n} {noun} missing from the cache ({shown}): {hint}")


class CorruptObjectError(ObjectError):
    pass


class CacheWriteError(ObjectError):
    pass


class LockError(TetherError):
    pass


class GitError(TetherError):
    pass


class RemoteError(TetherError):
    pass


class RetainedObjectsError(RemoteError):
    """Raised after a remote gc (or purge) collected all it could: S3 Object Lock keeps the
    objects the message counts, whole and readable. ``result`` is what the gc did."""

    exit_code = 3

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class RunError(TetherError):
    pass


class UnknownRunError(RunError):
    """A run this clone holds no record of: a teammate's comes from the team server or a git
    remote. ``run_id`` names it, so a caller that can fetch it may."""

    def __init__(self, run_id: str, message: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class LaunchError(RunError):
    """``tether run``'s command could not be started; ``exit_code`` is what a shell would give:
    127 not found, 126 found but not executable, 125 any other reason."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NotConfirmedError(RunError):
    """Reproducing a run someone else recorded was not confirmed: declined at the prompt, or
    no terminal to ask on and no ``--yes``. Nothing ran, so it exits 3."""

    exit_code = 3


class IndexStoreError(TetherError):
    pass


class PromptError(TetherError):
    """A prompt that cannot be found, parsed or rendered."""


class RegistryError(TetherError):
    """A registry operation refused: says which rule refused it."""


class TrustError(TetherError):
    """The root of trust refuses: a root that differs from the one this clone pinned, a root
    not signed by enough admins, an unsigned event where a root is in force, a key without the
    role the step needs."""


class VerificationError(TetherError):
    """A check that ran and found the content unlike what was signed: a negative verdict, so it
    exits 1 (``tether model verify``), not 4."""

    exit_code = 1


class SignatureError(VerificationError):
    """An envelope that is malformed, or not signed by any trusted key."""


class SigningKeyError(TetherError):
    """A local private key that cannot be created, found or read."""


class ServerError(TetherError):
    """The team server refused or could not answer. ``status`` is the HTTP status the server
    sends for it (the server maps errors to statuses in one place, ``tether.server.errors``)."""

    status = 400


class AuthenticationError(ServerError):
    """No token, or a token the server does not know, or one expired or revoked."""

    status = 401


class PermissionDeniedError(ServerError):
    """A known user whose role in this project does not allow the request."""

    status = 403


class MissingProjectError(ServerError):
    """A project the server does not have."""

    status = 404


class MissingRunError(ServerError):
    """A run the server's project does not have."""

    status = 404


class MissingOnServerError(ServerError):
    """Something else a page or a route names that the server's project does not have: a
    prompt version, an artifact, a metric."""

    status = 404


class ConflictError(ServerError):
    """A write that lost a race, or contradicts what the server already stored."""

    status = 409


class PayloadTooLargeError(ServerError):
    """A request body larger than the server accepts."""

    status = 413


class ServerUnavailableError(ServerError):
    """The server, its database or its object store did not answer in time: try again."""

    status = 503
