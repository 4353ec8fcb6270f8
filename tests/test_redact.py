"""Redaction rules: what must be hidden, what must stay, and no pathological slowness."""

from __future__ import annotations

import time

import pytest

from tether.redact import MASK, Redactor


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("python train.py --api-key sk-abcdefghijklmnopqrstuvwx --lr 0.1", "sk-abcdefghijklmno"),
        ("--db-password hunter2", "hunter2"),
        ("DB_PASSWORD=hunter2 make", "hunter2"),
        ("s3://alice:pw123@host/bucket", "pw123"),
        ('{"token": "abc123"}', "abc123"),
        ("Authorization: Bearer abcdefghijkl", "abcdefghijkl"),
        ("key AKIAABCDEFGHIJKLMNOP used", "AKIAABCDEFGHIJKLMNOP"),
        ("export GH=ghp_" + "a" * 36, "ghp_" + "a" * 36),
    ],
)
def test_secrets_are_masked(text: str, secret: str) -> None:
    out = Redactor().redact(text)
    assert secret not in out and MASK in out


@pytest.mark.parametrize("text", ["max_tokens=512", "author: bob", "the secret sauce", "lr=0.1"])
def test_ordinary_text_stays(text: str) -> None:
    assert Redactor().redact(text) == text


def test_user_rules_and_keys() -> None:
    r = Redactor(extra_patterns=[r"ACME-\d{6}"], extra_keys=["license"])
    assert r.redact("id ACME-123456 ok") == f"id {MASK} ok"
    assert r.redact_value("license", "abc") == MASK
    assert r.redact_value("api_key", "abc") == MASK
    assert r.redact_value("lr", "0.1") == "0.1"


def test_redaction_is_idempotent_and_keeps_binary() -> None:
    r = Redactor()
    once = r.redact("DB_PASSWORD=hunter2")
    assert r.redact(once) == once
    # one NUL does not make a log binary: the text around it is still redacted
    assert r.redact_bytes(b"\0\1password=hunter2\0") == b"\0\1password=***\0"
    assert r.redact_bytes(b"caf\xe9 password=x\n") == b"caf\xe9 password=***\n"  # not UTF-8


def test_notebook_json_and_env_style_secrets() -> None:
    r = Redactor()
    assert r.redact('"source": ["db_password = \\"hunter2\\""]').count("hunter2") == 0
    assert r.redact("PGPASSWORD=abc psql") == "PGPASSWORD=*** psql"
    assert "dXNlcjpwYXNz" not in r.redact("Authorization: Basic dXNlcjpwYXNz")


def test_long_lines_do_not_backtrack() -> None:
    """A megabyte of one character (a data file inside a diff) redacts in well under a second
    per rule set; a quadratic pattern would take minutes."""
    r = Redactor()
    start = time.perf_counter()
    for junk in ("x" * 1_000_000, "-" * 1_000_000, "a:" * 500_000, "ab://" * 200_000):
        r.redact(junk)
    assert time.perf_counter() - start < 20


def test_user_patterns_with_flags_and_back_references_still_mask() -> None:
    # the pre-check joins every rule into one pattern; rules it cannot join still apply
    r = Redactor(extra_patterns=[r"(?i)internal-\d{4}", r"(?P<q>['\"])hunter2(?P=q)"])
    assert r.redact("id INTERNAL-1234 here") == "id *** here"
    assert r.redact("pw 'hunter2' end") == "pw *** end"
    assert r.redact("plain text stays") == "plain text stays"
