"""Every exit code of the ``tether`` command, in one place.

docs/cli.md prints :data:`MEANINGS` and :data:`BY_COMMAND` as one table, and tests/cli/
test_exitcodes.py checks them against the errors' ``exit_code`` and against what each command
really raises. A command exits only with these names, never with a bare number.
"""

from __future__ import annotations

OK = 0
NEGATIVE = 1  # a verdict or check that came out negative: DIFFERENT, a gate not met
USAGE = 2  # a bad argument or option (click's, and UsageError)
NOT_CARRIED_OUT = 3  # the work could not be done as asked: reproduce FAILED, a stage failed
ERROR = 4  # any other TetherError: data, state, config, git, remote
RUN_OWN_FAILURE = 125  # `tether run`: Tether failed before or around the launch
NOT_EXECUTABLE = 126  # `tether run`: the command was found but cannot be executed
NOT_FOUND = 127  # `tether run`: the command was not found
INTERNAL = 70  # an unexpected exception: a bug in Tether (EX_SOFTWARE)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
TERMINATED = 143  # SIGTERM (128 + 15), after releasing what the command held
CLOSED_PIPE = 141  # stdout's reader went away (`| head -1`): 128 + SIGPIPE, as a shell says
SIGNAL_BASE = 128  # `tether run`: the child died of signal N -> 128 + N

MEANINGS: dict[str, str] = {
    "0": "success; a positive verdict (REPRODUCED, deterministic, every check passed)",
    "1": "a negative verdict: DIFFERENT, a gate not met, a check that found a problem",
    "2": "usage error: an unknown option or command, a bad argument, compare mode or tolerance",
    "3": "could not be carried out: reproduce FAILED, a pipeline stage failed, a remote gc that "
    "S3 Object Lock kept objects from",
    "4": "error: data, state, config, git or remote (the message says what to fix)",
    "70": "internal error, a bug in Tether: one line on stderr and the traceback in a file "
    "(TETHER_DEBUG=1 prints it)",
    "125, 126, 127": "`tether run` only: Tether failed around the launch; the command is not "
    "executable; the command was not found",
    "128+N": "`tether run` only: the command died of signal N (143 SIGTERM, 137 SIGKILL)",
    "130": "interrupted (Ctrl-C)",
    "143": "terminated (SIGTERM: a CI timeout, `docker stop`); remote locks are released first",
    "141": "the reader of stdout went away before all output was written (output piped into "
    "`head -1`, say): the output is cut short and is no verdict; a shell reports git or cat "
    "ended by SIGPIPE the same way (128 + 13)",
}

# What every command may exit with; BY_COMMAND adds a command's verdicts (1, 3).
COMMON = (OK, USAGE, ERROR)

# command -> {extra code: when}. Every command not listed exits with COMMON only (and 70, 130, 143,
# 141).
BY_COMMAND: dict[str, dict[int, str]] = {
    "audit verify": {NEGATIVE: "the chain, a signature or the signed head does not verify"},
    "fsck": {
        NEGATIVE: "an object is missing or corrupt, a pointer or ref unreadable, a pointer or "
        "manifest refused"
    },
    "gc": {NOT_CARRIED_OUT: "--remote: S3 Object Lock keeps some objects"},
    "hooks run": {NEGATIVE: "the hook refuses the commit"},
    "policy check-commits": {NEGATIVE: "a commit message does not follow Conventional Commits"},
    "model pull": {NEGATIVE: "the remote has events that do not verify: they were refused"},
    "model verify": {NEGATIVE: "a signature or a signed file does not verify"},
    "sync": {NEGATIVE: "the server refused a run (the message says why); the rest uploaded"},
    "prompt ci": {NEGATIVE: "a significant regression, a gate that cannot tell, or a refusal"},
    "prompt compare": {NEGATIVE: "B is worse than A by more than the margin, or cannot tell"},
    "prompt eval": {NEGATIVE: "a suite threshold is not met"},
    "prompt history": {NEGATIVE: "a tag disagrees with the label log"},
    "prompt import": {NEGATIVE: "part of the configuration could not be converted (named)"},
    "prompt pull": {NEGATIVE: "the remote has events that do not verify: they were refused"},
    "prompt lint": {NEGATIVE: "a problem found"},
    "repro": {NOT_CARRIED_OUT: "a stage failed"},
    "reproduce": {
        NEGATIVE: "DIFFERENT",
        NOT_CARRIED_OUT: "FAILED: the run could not be redone or was refused; someone else's run "
        "not confirmed (no terminal, no --yes)",
    },
    "run": {
        NEGATIVE: "--check-determinism: the two runs differ (else: the command's own status)",
        NOT_CARRIED_OUT: "--check-determinism: nothing to compare, or it failed both times",
        RUN_OWN_FAILURE: "Tether failed before or around the launch (a bad option too)",
        NOT_EXECUTABLE: "the command is not executable",
        NOT_FOUND: "the command was not found",
    },
    "runs purge": {NOT_CARRIED_OUT: "--remote: S3 Object Lock keeps some objects"},
}

# `tether run` exits with its command's status: Tether's own failures use RUN_OWN_FAILURE,
# never USAGE or ERROR, so that a script's own 2 (argparse) or 4 is not mistaken for Tether's.
PASS_THROUGH = frozenset({"run"})


def codes(command: str) -> list[int]:
    """Every code ``tether COMMAND`` can exit with (besides 70, 130, 141 and 143)."""
    extra = BY_COMMAND.get(command, {})
    common = (OK,) if command in PASS_THROUGH else COMMON
    return sorted({*common, *extra})
