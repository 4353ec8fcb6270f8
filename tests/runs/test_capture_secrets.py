"""Secrets, precisely, through a real `tether run`: ordinary ML code passes untouched and
reproduces byte for byte; untracked files that look like secrets are left out and named; what
redaction masks in the captured patch is warned about by file and line and recorded.

The secrets are built at test time from obviously fake parts (no real-looking credential sits in
the repository for a scanner to flag).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, git, write_files
from tether.api import Project
from tether.errors import ConfigError

FAKE = "Ab1" * 14
OPENAI_KEY = "sk-proj-" + FAKE
PEM = "\n".join(
    ["-----BEGIN " + "PRIVATE KEY-----", "FAKEFAKEFAKE" + FAKE, "-----END " + "PRIVATE KEY-----"]
)

BASE = """import os, tether
open("out.txt", "w").write("base\\n")
tether.log_output("out.txt")
"""

ML_SCRIPT = """import os, tether
from model_cfg import Tokenizer

tokenizer = Tokenizer()
pad_token_id = tokenizer.eos_token_id
eos_token = "</s>"
max_tokens = 512
tokenizer.pad_token = tokenizer.eos_token
token_ids = [1, 2]
if "DB_PASSWORD" in os.environ:
    password = os.environ["DB_PASSWORD"]
open("out.txt", "w").write(f"{pad_token_id} {eos_token} {max_tokens} {token_ids}\\n")
tether.log_output("out.txt")
"""
ML_MODULE = """class Tokenizer:
    eos_token_id = 2
    eos_token = "</s>"
    pad_token = None
    special_tokens = {"pad_token": "[PAD]", "unk_token": "<unk>"}
"""
ML_CONFIG = """model:
  eos_token: "</s>"
  pad_token: <pad>
  max_tokens: 512
  api_key: ${OPENAI_API_KEY}
"""
ML_LINES = [
    "pad_token_id = tokenizer.eos_token_id",
    'eos_token = "</s>"',
    "max_tokens = 512",
    "tokenizer.pad_token = tokenizer.eos_token",
    "token_ids = [1, 2]",
    'password = os.environ["DB_PASSWORD"]',
    'special_tokens = {"pad_token": "[PAD]", "unk_token": "<unk>"}',
    "api_key: ${OPENAI_API_KEY}",
]


def committed(repo: Path, files: dict[str, str]) -> None:
    write_files(repo, {"train.py": BASE, **files})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n__pycache__/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")


def run(repo: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "tether"), "run", "-n", name, "--", sys.executable, "train.py", *args],
        cwd=repo, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def code_of(repo: Path, name: str) -> tuple[dict[str, Any], bytes]:
    with Project.open(repo) as project:
        code = project.get_run(name)["code"]
        patch = project.ws.store.read_bytes(code["diff"]) if code["diff"] else b""
    return code, patch


def every_byte(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_ml_code_that_names_tokens_passes_through_a_run_untouched_and_reproduces_byte_identical(
    repo: Path,
) -> None:
    committed(repo, {})
    files = {"train.py": ML_SCRIPT, "model_cfg.py": ML_MODULE, "config.yaml": ML_CONFIG}
    write_files(repo, files)  # a tracked edit and two untracked files
    done = run(repo, "ml")
    assert "masked" not in done.stderr and "looks like a secret" not in done.stderr

    code, patch = code_of(repo, "ml")
    assert code["redactions"] == [] and code["left_out"] == []
    for line in ML_LINES:
        assert line.encode() in patch, line
    with Project.open(repo) as project:
        v = project.reproduce("ml", keep=True)
    assert v.verdict == "REPRODUCED", v.reason
    assert v.worktree is not None
    for rel in files:
        assert (Path(v.worktree) / rel).read_bytes() == (repo / rel).read_bytes(), rel


def test_untracked_files_that_look_like_secrets_are_left_out_named_and_warned(
    repo: Path,
) -> None:
    committed(repo, {})
    secrets = {
        ".env": f"OPENAI_API_KEY={OPENAI_KEY}\n",
        "deploy/id_rsa": PEM + "\n",
        "certs/server.pem": PEM + "\n",
        "config/.env.production": "DB_PASSWORD=fake-production-pw\n",
    }
    write_files(repo, {**secrets, "notes.txt": "kept\n"})
    done = run(repo, "leaky")

    code, patch = code_of(repo, "leaky")
    assert code["left_out"] == [
        {"path": p, "reason": "looks like a secret"} for p in sorted(secrets)
    ]
    for path in secrets:
        assert f"warning: untracked {path} looks like a secret" in done.stderr
        assert path.encode() not in patch
    assert b"notes.txt" in patch  # every other untracked file is still captured
    stored = every_byte(repo / ".tether")
    for content in (OPENAI_KEY, FAKE, "fake-production-pw"):
        assert content.encode() not in stored
    with Project.open(repo) as project:  # a reproduction says what it lacked, if it differs
        from tether.capture.code import lacking

        assert ".env" in lacking(project.get_run("leaky")["code"])


def test_a_masked_line_is_warned_by_file_and_line_and_recorded(repo: Path) -> None:
    settings = "".join(f"setting_{i} = {i}\n" for i in range(1, 11))
    committed(repo, {"settings.py": settings})
    lines = settings.splitlines(keepends=True)
    # two lines removed above it: old line 6 is line 4 in the new version of the file
    lines[5] = 'db_password = "fake-db-pw-42"\n'
    write_files(repo, {"settings.py": "".join(lines[2:])})
    write_files(repo, {"client.py": f'import os\n\nKEY = "{OPENAI_KEY}"\n'})  # untracked
    done = run(repo, "masked")

    code, patch = code_of(repo, "masked")
    assert code["redactions"] == [
        {"file": "client.py", "line": 3, "rule": "openai-key"},
        {"file": "settings.py", "line": 4, "rule": "secret-assignment"},
    ]
    assert "warning: settings.py:4: masked a value that looks like a secret" in done.stderr
    assert "warning: client.py:3: masked a value that looks like a secret" in done.stderr
    assert b"fake-db-pw-42" not in patch and OPENAI_KEY.encode() not in patch
    assert b'+db_password = "***"' in patch and b'+KEY = "***"' in patch


def test_an_allowed_pattern_is_never_masked_in_the_captured_patch(repo: Path) -> None:
    committed(repo, {})
    fixture = "sk_" + "test_" + "fixture" + FAKE
    write_files(repo, {"conftest.py": f'STRIPE_KEY = "{fixture}"\n'})
    with Project.open(repo) as project:
        project.config_set("redact.allow", '["sk_test_fixture\\\\w+"]')
        with pytest.raises(ConfigError, match=r"redact\.allow"):
            project.config_set("redact.allow", '["(unclosed"]')
    done = run(repo, "allowed")

    code, patch = code_of(repo, "allowed")
    assert fixture.encode() in patch and code["redactions"] == []
    assert "masked" not in done.stderr


def test_secret_values_in_a_patch_with_binary_files_and_unusual_names_are_placed_exactly(
    repo: Path,
) -> None:
    """Quoted (non-ASCII) paths, binary data left alone; a removed line is the commit's, already
    in git: it stays, so the patch applies."""
    committed(repo, {"old.py": "a = 1\npassword = 'fake-old-pw-1'\nb = 2\n"})
    write_files(
        repo,
        {
            "old.py": "a = 1\nb = 2\n",
            "café.py": f"x = 1\ntoken = '{FAKE}'\n",
            "blob.bin": b"\0\1password=fake-binary-pw\0" * 10,
        },
    )
    run(repo, "binary")
    code, patch = code_of(repo, "binary")
    assert code["redactions"] == [
        {"file": "café.py", "line": 2, "rule": "secret-assignment"},
    ]
    assert b"GIT binary patch" in patch
    assert FAKE.encode() not in patch and b"-password = 'fake-old-pw-1'" in patch


def test_the_recorded_command_keeps_token_options_and_masks_a_password(repo: Path) -> None:
    committed(repo, {})
    args = ("--pad-token-id", "0", "--eos-token", "</s>", "--db-password", "fake-cli-pw")
    run(repo, "argv", *args)
    with Project.open(repo) as project:
        command = project.get_run("argv")["command"]
    assert command[-6:] == ["--pad-token-id", "0", "--eos-token", "</s>", "--db-password", "***"]


def test_secrets_precisely_a_secret_committed_near_an_edit_keeps_the_run_reproducible(
    repo: Path,
) -> None:
    """The committed key on line 2 is in the patch's context: it is the commit's, not masked,
    not recorded; the patch applies and the run reproduces."""
    key = "sk-proj-" + FAKE
    script = f'import os, tether\nKEY = "{key}"\nx = 1\n' + BASE.split("\n", 1)[1]
    committed(repo, {})
    write_files(repo, {"train.py": script})
    git(repo, "commit", "-qam", "key")
    write_files(repo, {"train.py": script.replace("x = 1", "x = 2")})
    run(repo, "near")
    code, patch = code_of(repo, "near")
    assert code["redactions"] == []
    assert b"+x = 2" in patch
    with Project.open(repo) as project:
        v = project.reproduce("near", keep=True)
    assert v.verdict == "REPRODUCED", v.reason


def test_secrets_precisely_staged_but_never_committed_secret_files_are_left_out(
    repo: Path,
) -> None:
    committed(repo, {})
    secrets = {".env": f"OPENAI_API_KEY={OPENAI_KEY}\n", "id_rsa": PEM + "\n"}
    write_files(repo, {**secrets, "notes.txt": "kept\n"})
    git(repo, "add", ".env", "id_rsa", "notes.txt")
    run(repo, "staged")
    code, patch = code_of(repo, "staged")
    assert [i["path"] for i in code["left_out"]] == [".env", "id_rsa"]
    assert b".env" not in patch and b"id_rsa" not in patch and b"notes.txt" in patch
    stored = every_byte(repo / ".tether")
    assert OPENAI_KEY.encode() not in stored and FAKE.encode() not in stored
    status = subprocess.run(
        ["git", "diff", "--cached", "--name-only"], cwd=repo, capture_output=True, text=True
    )
    assert status.stdout.split() == [".env", "id_rsa", "notes.txt"]  # the user's index kept


def test_secrets_precisely_a_bare_value_in_a_config_file_is_masked(repo: Path) -> None:
    committed(repo, {})
    write_files(repo, {"db.ini": "[client]\npassword = hunter2\n"})
    run(repo, "ini")
    code, patch = code_of(repo, "ini")
    assert code["redactions"] == [{"file": "db.ini", "line": 2, "rule": "secret-assignment"}]
    assert b"hunter2" not in patch
