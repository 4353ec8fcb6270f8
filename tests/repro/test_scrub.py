"""Reproducing someone else's run (issue 12): the re-run's environment keeps what an ordinary
run needs and withholds what looks like a credential, by name or by the shape of its value."""

from __future__ import annotations

from tether.redact import Redactor
from tether.repro.scrub import scrub

RANDOM = "q8ZfK2vR7xLmN4pT9wYbC3dHjS6a"  # 28 random-looking characters

SECRET = {
    "B2_APPLICATION_KEY": "K005abcdefghijklmnopqrstuvwxyz0",
    "KAGGLE_KEY": "0123456789abcdef0123456789abcdef",
    "MY_SVC_CREDS": RANDOM,
    "SENTRY_DSN": "https://abc123@o0.ingest.sentry.io/42",
    "DB_PASS": "hunter2",
    "SMTP_PW": "letmein",
    "LDAP_PWD": "opensesame",
    "BUILD_NONCE": RANDOM[::-1],  # no name says so: the value does
}

ORDINARY = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/home/bob",
    "LANG": "C.UTF-8",
    "TERM": "xterm-256color",
    "PWD": "/home/bob/project/with-a-long-folder-name-2024",
    "OLDPWD": "/home/bob",
    "SHELL": "/bin/bash",
    "USER": "bob",
    "VIRTUAL_ENV": "/home/bob/project/.venv",
    "PYTHONPATH": "/home/bob/project/src",
    "PYTHONHASHSEED": "0",
    "CUDA_VISIBLE_DEVICES": "GPU-8a7f3c2e-91b4-4d2a-b7e1-3f5c6d7e8f90",
    "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
    "LC_ALL": "C.UTF-8",
    "OMP_NUM_THREADS": "4",
    "KEYTIMEOUT": "1",  # not a key: KEY is no part of its name
    "INVOCATION_ID": "0f2b7c9e4d1a4b3c8e5f6a7b8c9d0e1f",  # ids, named so
    "PYTEST_XDIST_TESTRUNUID": "5c1e9a7b3d2f4e6a8b0c1d2e3f4a5b6c",
    # a setting, in mixed case and long, but no token
    "TOX_OVERRIDE": "testenv.passenv+=#,OPENBLAS_*;env_run_base.passenv+=OPENBLAS_*",
}


def test_the_scrubbed_environment_withholds_secret_names_and_random_looking_values() -> None:
    done = scrub({**SECRET, **ORDINARY}, Redactor())
    assert sorted(done.withheld) == sorted(SECRET)
    assert done.kept == ORDINARY
