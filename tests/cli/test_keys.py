"""``tether keys``: generate -> trust -> list, in a real git repository."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tether.cli.keys import keys
from tether.config import Config
from tether.errors import ConfigError, NotARepositoryError
from tether.keyconfig import trusted_keys
from tether.signing import SigningKeyError, load_signer, verify


@pytest.fixture
def keys_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A keys folder outside the repository (the ``repo`` fixture lives in tmp_path/repo)."""
    folder = tmp_path / "home-keys"
    monkeypatch.setenv("TETHER_KEYS_DIR", str(folder))
    monkeypatch.delenv("TETHER_SIGNING_KEY", raising=False)
    monkeypatch.delenv("TETHER_KEY_PASSPHRASE", raising=False)
    return folder


def run(*args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(keys, list(args), input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_generate_trust_list(repo: Path, keys_dir: Path) -> None:
    out = run("generate", "--identity", "alice@example.com").output
    keyid = re.search(r"Key id:\s+(ed25519:[0-9a-f]{32})", out)
    assert keyid is not None
    hexid = keyid[1].removeprefix("ed25519:")
    assert (keys_dir / f"{hexid}.pem").stat().st_mode & 0o777 == 0o600
    assert "-----BEGIN PUBLIC KEY-----" in out and "PRIVATE" not in out.replace("Private key:", "")
    command = next(line.strip() for line in out.splitlines() if "tether keys trust" in line)
    argv = shlex.split(command)[2:]  # drop "tether keys"
    assert argv[1] == str(keys_dir / f"{hexid}.pub")

    before = (repo / "tether.toml").read_text()
    out = run(*argv, "--role", "approver").output
    assert f"Trusted {keyid[1]} as alice@example.com (approver) in tether.toml" in out
    text = (repo / "tether.toml").read_text()
    assert text.startswith(before)  # appended: the comments tether init wrote are still there
    trusted = trusted_keys(Config.load(repo).data)
    assert trusted[keyid[1]].identity == "alice@example.com"
    assert trusted[keyid[1]].roles == {"approver"}

    listing = run("list").output
    assert re.search(rf"{keyid[1]}\s+alice@example.com\s+approver", listing)
    assert f"{keyid[1]}  alice@example.com  (trusted here)" in listing

    # what it signs verifies against what the project trusts
    envelope = load_signer().sign("text/plain", b"approve churn v3")
    assert verify(envelope, trusted).signer.identity == "alice@example.com"

    run(*argv)  # trusted again with no roles: updated, not duplicated
    assert trusted_keys(Config.load(repo).data)[keyid[1]].roles == frozenset()
    assert (repo / "tether.toml").read_text().count(keyid[1]) == 1


def test_trust_from_stdin_and_locally(repo: Path, keys_dir: Path) -> None:
    run("generate", "--identity", "bob@example.com")
    pub = next(keys_dir.glob("*.pub"))
    out = run(
        "trust", "-", "--identity", "bob@example.com", "--local", stdin=pub.read_text()
    ).output
    assert "in .tether/config.toml" in out
    assert "keys" not in (repo / "tether.toml").read_text()
    assert (repo / ".tether/config.toml").stat().st_mode & 0o077 == 0
    assert [k.identity for k in trusted_keys(Config.load(repo).data).values()] == [
        "bob@example.com"
    ]


def test_trust_refuses_a_private_key(repo: Path, keys_dir: Path) -> None:
    run("generate", "--identity", "alice@example.com")
    pem = next(keys_dir.glob("*.pem"))
    with pytest.raises(ConfigError, match="private key"):
        run("trust", str(pem), "--identity", "alice@example.com")
    assert "PRIVATE" not in (repo / "tether.toml").read_text()


def test_trust_outside_a_tether_project(tmp_path: Path, keys_dir: Path) -> None:
    from tests.conftest import make_repo

    bare = make_repo(tmp_path / "bare")
    run("generate", "--identity", "alice@example.com")
    pub = str(next(keys_dir.glob("*.pub")))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(bare)
        with pytest.raises(NotARepositoryError, match="tether init"):
            run("trust", pub, "--identity", "alice@example.com")


def test_generate_refuses_a_folder_in_the_repository(repo: Path, keys_dir: Path) -> None:
    with pytest.raises(SigningKeyError, match="never live in a repository"):
        run("generate", "--identity", "alice@example.com", "--dir", str(repo / "keys"))
    assert not (repo / "keys").exists()


def test_list_with_nothing(repo: Path, keys_dir: Path) -> None:
    out = run("list").output
    assert "Trusted keys: none" in out and f"Private keys in {keys_dir}: none" in out


def test_help_describes_every_command() -> None:
    out = run("--help").output
    for name in ("generate", "trust", "list"):
        assert name in out
