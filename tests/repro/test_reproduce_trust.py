"""Reproducing someone else's run (issue 12): a teammate with push access records a run whose
command and patch are theirs; the victim reproduces it through the CLI. It asks first, runs
without the victim's tokens, signing keys and cloud credentials, installs only from the victim's
package index, and refuses a patch that redaction altered."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tether as tether_package
from tests.conftest import BIN, Tether, git, write_files
from tether.api import Project

# a subprocess imports the Tether under test, wherever the test's own came from
SOURCES = str(Path(tether_package.__file__).resolve().parents[1])

JOB = """import json, os, sys
value = os.environ.get("GH_TOKEN", "")
json.dump(dict(os.environ), open(sys.argv[1], "w"))
open("out.txt", "w").write("same\\n")
"""

SECRETS = {
    "TETHER_TOKEN": "tt-victim-0001",
    "TETHER_KEYS_DIR": "",  # set to the victim's keys folder
    "AWS_ACCESS_KEY_ID": "AKIAVICTIMVICTIM0001",
    "AWS_SECRET_ACCESS_KEY": "victim/secret/aws/key/0001",
    "MODEL_SIGNING_KEY_PATH": "/home/victim/.keys/release.pem",
    "DATABASE_URL": "postgresql://victim:hunter2@db.internal/prod",
    "HF_TOKEN": "hf_victimvictimvictimvictimvictim01",
}


def as_user(monkeypatch: pytest.MonkeyPatch, name: str, email: str | None = None) -> None:
    """The identity Tether records: the OS user (``getpass.getuser``: LOGNAME, then USER) and
    the e-mail git commits as (compared)."""
    monkeypatch.setenv("LOGNAME", name)
    monkeypatch.setenv("USER", name)
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", email or f"{name}@example.com")


def recorded(repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch, user: str) -> Path:
    """``user`` records run ``job`` with an uncommitted edit; its command writes its
    environment to the returned file (outside the repository)."""
    write_files(repo, {"job.py": JOB})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "job")
    with open(repo / "job.py", "a") as f:
        f.write(f"# {user} was here\n")
    seen = repo.parent / "seen-env.json"
    as_user(monkeypatch, user)
    tether("run", "-n", "job", "--out", "out.txt", "--", sys.executable, "job.py", str(seen))
    seen.unlink()
    git(repo, "checkout", "job.py")
    return seen


@pytest.fixture
def victim(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The victim's environment: a keys folder with a key in it, tokens and credentials."""
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "0123.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a real key\n")
    env = {**SECRETS, "TETHER_KEYS_DIR": str(keys)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def flat(text: str) -> str:
    """Output as one line: the terminal's wrapping undone."""
    return " ".join(text.split())


def squashed(text: str) -> str:
    """Output with no whitespace at all: a long path wrapped anywhere reads whole."""
    return "".join(text.split())


def this_tether() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SOURCES, path]))}


def runs(repo: Path) -> int:
    with Project.open(repo) as project:
        return len(project.search_runs(""))


def test_someone_elses_run_is_not_reproduced_without_yes_when_no_one_can_be_asked(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch, victim: dict[str, str]
) -> None:
    seen = recorded(repo, tether, monkeypatch, "mallory")
    before = runs(repo)
    as_user(monkeypatch, "victim")
    out = flat(tether("reproduce", "job", expect=3).output)  # CliRunner's stdin: no terminal
    assert (
        "recorded by mallory <mallory@example.com>, not by you (victim <victim@example.com>)" in out
    )
    assert "job.py" in out and "+1 -0" in out  # the patch, summarised
    assert " ".join([sys.executable, "job.py", str(seen)]) in out  # the command
    assert "--yes" in out and "nothing ran" in out
    assert not seen.exists() and runs(repo) == before  # nothing ran
    for value in victim.values():
        assert value not in out  # names of what is withheld, never values


def test_a_reproduction_runs_without_your_tokens_keys_and_cloud_credentials(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch, victim: dict[str, str]
) -> None:
    seen = recorded(repo, tether, monkeypatch, "mallory")
    as_user(monkeypatch, "victim")
    out = flat(tether("reproduce", "job", "--yes", "--pass-env", "HF_TOKEN", expect=0).output)
    child = json.loads(seen.read_text())
    gone = [
        "TETHER_TOKEN",
        "TETHER_KEYS_DIR",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "MODEL_SIGNING_KEY_PATH",
        "DATABASE_URL",  # its value holds a password
    ]
    assert not set(gone) & set(child), sorted(child)
    assert child["HF_TOKEN"] == victim["HF_TOKEN"]  # --pass-env gives it back
    assert child["PATH"] == os.environ["PATH"] and child["HOME"] == os.environ["HOME"]
    assert child["TETHER_RUN_ID"]  # Tether's own, for the run it records
    assert "withheld from the re-run" in out and all(name in out for name in gone)
    for value in victim.values():
        assert value not in out
    assert os.environ["TETHER_TOKEN"] == victim["TETHER_TOKEN"]  # yours again afterwards


def test_your_own_run_is_reproduced_without_asking(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch, victim: dict[str, str]
) -> None:
    seen = recorded(repo, tether, monkeypatch, "victim")
    out = flat(tether("reproduce", "job", expect=0).output)
    assert "REPRODUCED" in out and "Reproduce it?" not in out and "recorded by" not in out
    assert "TETHER_TOKEN" not in json.loads(seen.read_text())  # scrubbed all the same


def test_a_prompt_on_a_terminal_asks_and_a_no_runs_nothing(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch, victim: dict[str, str]
) -> None:
    seen = recorded(repo, tether, monkeypatch, "mallory")
    as_user(monkeypatch, "victim")
    main, terminal = pty.openpty()
    proc = subprocess.Popen(
        [str(BIN / "tether"), "reproduce", "job"],
        cwd=repo,
        env=this_tether(),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while b"Reproduce it?" not in shown:
        chunk = os.read(main, 4096)
        assert chunk, shown
        shown += chunk
    os.write(main, b"n\n")
    try:
        while os.read(main, 4096):
            pass
    except OSError:  # the terminal closed: the process is done with it
        pass
    os.close(main)
    assert proc.wait() == 3
    assert b"recorded by mallory" in shown and not seen.exists()


def test_reproduce_never_reads_the_keys_folder(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch, victim: dict[str, str]
) -> None:
    """Tether's own process, watched by an audit hook, opens and lists nothing in the keys
    folder while it reproduces (the re-run's process is another matter: see the docs)."""
    recorded(repo, tether, monkeypatch, "mallory")
    as_user(monkeypatch, "victim")
    watch = (
        "import os, sys\n"
        "keys = os.environ['TETHER_KEYS_DIR']\n"
        "touched = []\n"
        "def hook(event, args):\n"
        "    if event in ('open', 'os.listdir', 'os.scandir', 'os.walk', 'glob.glob') and args:\n"
        "        if str(args[0]).startswith(keys):\n"
        "            touched.append((event, str(args[0])))\n"
        "sys.addaudithook(hook)\n"
        "from tether.cli.main import main\n"
        "sys.argv = ['tether', 'reproduce', 'job', '--yes']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.code, touched)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", watch],
        cwd=repo,
        env=this_tether(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert "EXIT 0 []" in proc.stdout, proc.stdout + proc.stderr


def forged_env(repo: Path, run: str, packages: dict[str, Any]) -> None:
    """The attacker's Tether writes the record's environment with these packages."""
    from tether.runs.record import dump_record

    with Project.open(repo) as project:
        record = project.get_run(run)
        env = json.loads(project.ws.store.read_bytes(record["env"]))
        env["packages"] = {**env["packages"], **packages}
        record["env"] = project.ws.store.put_bytes(json.dumps(env).encode())
        body = {k: v for k, v in record.items() if k not in ("tether", "kind", "format", "links")}
        oid = project.ws.store.put_bytes(dump_record("run", body))
        project.ws.refs.set(f"runs/{record['id']}", [oid])


def test_a_fresh_environment_refuses_a_record_listing_a_vcs_or_url_requirement(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch, victim: dict[str, str]
) -> None:
    seen = recorded(repo, tether, monkeypatch, "mallory")
    as_user(monkeypatch, "victim")
    forged_env(
        repo,
        "job",
        {
            "evil-wheel": {"version": "1.0", "source": {"url": "https://evil.example/e.whl"}},
            "evil-git": {
                "version": "2.0",
                "source": {"url": "https://evil.example/r.git", "vcs": "git", "commit_id": "ab"},
            },
            "innocent": {"version": "1.0\n--extra-index-url https://evil.example/simple"},
        },
    )
    out = flat(tether("reproduce", "job", "--env", "fresh", "--yes", expect=3).output)
    assert "FAILED" in out and "outside your configured package index" in out
    assert "evil-wheel from a URL https://evil.example/e.whl" in out
    assert "evil-git from git at https://evil.example/r.git" in out
    assert "innocent" in out and "--allow-direct-sources" in out
    assert not seen.exists()  # refused before anything was built or run
    # the opt-in lets direct sources through, never an entry that carries pip options
    out = flat(
        tether(
            "reproduce", "job", "--env", "fresh", "--yes", "--allow-direct-sources", expect=3
        ).output
    )
    assert "innocent" in out and "evil-wheel" not in out and not seen.exists()


@given(
    st.dictionaries(
        st.text(max_size=12),
        st.fixed_dictionaries(
            {"version": st.text(max_size=12)},
            optional={
                "source": st.fixed_dictionaries(
                    {"url": st.text(max_size=20)},
                    optional={"vcs": st.text(max_size=5), "commit_id": st.text(max_size=8)},
                )
            },
        ),
        max_size=4,
    ),
    st.booleans(),
)
def test_a_record_s_packages_never_become_pip_options(packages: Any, allow: bool) -> None:
    """Whatever the record lists, each requirement line is one requirement: no newline, no
    option, no whitespace that pip would split into another argument."""
    from tether.repro.freshenv import requirements

    wanted = requirements({"packages": packages}, allow_sources=allow)
    for line in wanted.pins:
        assert "\n" not in line and "\r" not in line and not line.startswith("-")
        name, _, rest = line.partition("==") if " @ " not in line else line.partition(" @ ")
        assert not any(c.isspace() for c in name + rest), line


def masked(repo: Path, tether: Tether, redactions: list[dict[str, Any]] | None) -> None:
    """A run whose patch has a value redaction replaced by the mask (line 2 of job.py); the
    record lists ``redactions`` as the capture does, or (None) lists none, as an older Tether
    sealed it."""
    from tether.runs.record import dump_record

    write_files(repo, {"job.py": JOB})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "job")
    text = (repo / "job.py").read_text()
    (repo / "job.py").write_text(text.replace('os.environ.get("GH_TOKEN", "")', '"***"'))
    seen = repo.parent / "masked-env.json"
    tether("run", "-n", "masked", "--out", "out.txt", "--", sys.executable, "job.py", str(seen))
    git(repo, "checkout", "job.py")
    with Project.open(repo) as project:
        record = project.get_run("masked")
        record["code"].pop("redactions", None)
        if redactions is not None:
            record["code"]["redactions"] = redactions
        body = {k: v for k, v in record.items() if k not in ("tether", "kind", "format", "links")}
        oid = project.ws.store.put_bytes(dump_record("run", body))
        project.ws.refs.set(f"runs/{record['id']}", [oid])


def test_a_patch_redaction_altered_is_refused_until_pass_env_says_where_the_value_is(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    masked(repo, tether, [{"file": "job.py", "line": 2, "rule": "github-token"}])
    out = flat(tether("reproduce", "masked", expect=3).output)
    assert "FAILED" in out and "altered by redaction" in out
    assert "job.py:2 (github-token)" in out and "--pass-env" in out
    assert "ran as recorded" not in out and "ran with" not in out  # nothing ran
    monkeypatch.setenv("GH_TOKEN", "ghp_" + "a1B2" * 9)
    out = flat(tether("reproduce", "masked", "--pass-env", "GH_TOKEN", expect=0).output)
    assert "REPRODUCED" in out  # ran, and says what it ran: the mask, not the value
    assert "the code ran with the mask *** at job.py:2 (github-token)" in out


def test_a_pass_env_name_not_set_here_does_not_unlock_a_patch_redaction_altered(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    masked(repo, tether, [{"file": "job.py", "line": 2, "rule": "github-token"}])
    monkeypatch.delenv("NOPE", raising=False)
    out = flat(tether("reproduce", "masked", "--pass-env", "NOPE", expect=3).output)
    assert "FAILED" in out and "altered by redaction" in out and "not set here" in out
    assert "ran as recorded" not in out and "ran with" not in out
    with Project.open(repo) as project:
        assert [r.name for r in project.search_runs("")] == ["masked"]  # nothing ran


def test_a_different_verdict_of_a_patch_redaction_altered_names_the_redaction_first(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The masked code writes something else than the recorded code did: the redaction is
    the first likely cause the verdict gives."""
    from tether.runs.record import dump_record

    masked(repo, tether, [{"file": "job.py", "line": 2, "rule": "github-token"}])
    with Project.open(repo) as project:
        record = project.get_run("masked")
        record["data"]["outputs"] = {"out.txt": project.ws.store.put_bytes(b"secret-made\n")}
        body = {
            k: v
            for k, v in record.items()
            if k not in ("tether", "kind", "format", "links", "record_id")
        }
        oid = project.ws.store.put_bytes(dump_record("run", body))
        project.ws.refs.set(f"runs/{record['id']}", [oid])
    out = tether("reproduce", "masked", "--pass-env", "HOME", expect=1).output
    why = out[out.index("Why") :] if "Why" in out else out
    first = next(line for line in why.splitlines()[1:] if line.strip())
    assert "redaction" in first and "job.py:2" in first, out


def test_an_older_record_s_masked_patch_is_found_by_the_mask(repo: Path, tether: Tether) -> None:
    masked(repo, tether, None)  # no `code.redactions`: the mask on an added line tells
    out = flat(tether("reproduce", "masked", expect=3).output)
    assert "job.py:2 (the mask ***)" in out


def test_a_record_that_lists_no_redaction_is_taken_at_its_word(repo: Path, tether: Tether) -> None:
    masked(repo, tether, [])
    assert "REPRODUCED" in tether("reproduce", "masked", expect=0).output


def test_the_review_cannot_redraw_the_terminal_to_hide_what_it_runs() -> None:
    """A record's command, name and paths are shown with control characters escaped."""
    from tether.cli.reproduce import review_lines
    from tether.repro.review import FileChange, Review

    seen = Review(
        run="r",
        name="n\x1b]0;title\x07",
        recorded_by="mallory\x1b[2K",
        you="victim",
        command=["python", "x.py\x1b[1A\x1b[2K", "--harmless"],
        commit="c",
        pipeline=False,
        changes=[FileChange("a\rb.py", 1, 0)],
        redactions=[],
        env="current",
    )
    text = "\n".join(review_lines(seen))
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\\x1b[1A\\x1b[2K" in text and "a\\rb.py" in text


def rewritten(repo: Path, run: str, change: Any) -> None:
    """The attacker's Tether rewrites run ``run``'s record (``change(body)`` edits it)."""
    from tether.runs.record import dump_record

    with Project.open(repo) as project:
        record = project.get_run(run)
        body = {
            k: v
            for k, v in record.items()
            if k not in ("tether", "kind", "format", "links", "record_id")
        }
        change(body)
        oid = project.ws.store.put_bytes(dump_record("run", body))
        project.ws.refs.set(f"runs/{record['id']}", [oid])


def test_a_reproduction_never_reads_or_stores_a_dep_outside_the_repository(
    repo: Path,
    tether: Tether,
    monkeypatch: pytest.MonkeyPatch,
    victim: dict[str, str],
    tmp_path: Path,
) -> None:
    """Alice's record names the victim's signing key and another file of theirs as absolute
    --deps; Bob's reproduction (then push) must not hash, store or list either."""
    from tether.hashing import hash_bytes

    recorded(repo, tether, monkeypatch, "mallory")
    key = Path(victim["TETHER_KEYS_DIR"]) / "0123.pem"
    diary = tmp_path / "diary.txt"
    diary.write_text("bob's own notes\n")
    with Project.open(repo) as project:
        planted = project.ws.store.put_bytes(b"what alice had there\n")

    def plant(body: dict[str, Any]) -> None:
        body["declared"]["deps"] = [str(key), str(diary)]
        body["data"]["inputs"] = {str(key): planted, str(diary): planted}

    rewritten(repo, "job", plant)
    as_user(monkeypatch, "victim")
    review = squashed(tether("reproduce", "job", expect=3).output)  # the prompt, no terminal
    assert squashed(f"reads {key} (outside the repository: not read, not compared)") in review
    out = squashed(tether("reproduce", "job", "--yes", expect=0).output)
    assert squashed(f"{diary}, {key}: outside the repository: not compared") in out
    with Project.open(repo) as project:
        for secret in (key, diary):
            assert not project.ws.store.has(hash_bytes(secret.read_bytes()))
        (again,) = [r for r in project.search_runs("") if r.tags.get("reproduction_of")]
        record = project.get_run(again.id)
        assert record["data"]["inputs"] == {} and record["declared"]["deps"] == []


def test_nothing_in_the_keys_folder_is_ever_recorded_as_a_run_s_data(
    repo: Path, tether: Tether, victim: dict[str, str]
) -> None:
    from tether.hashing import hash_bytes

    key = Path(victim["TETHER_KEYS_DIR"]) / "0123.pem"
    for path in (key, key.parent):
        out = tether("run", "--dep", str(path), "--", sys.executable, "-c", "pass", expect=125)
        assert "keys folder" in out.output
    with Project.open(repo) as project:
        assert not project.ws.store.has(hash_bytes(key.read_bytes()))
        assert project.search_runs("") == []


def test_a_run_recorded_under_the_same_os_user_by_another_git_identity_asks(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch, victim: dict[str, str]
) -> None:
    """In a container everyone is root: the e-mail git commits as tells them apart."""
    seen = recorded(repo, tether, monkeypatch, "root")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "bob@example.com")
    out = flat(tether("reproduce", "job", expect=3).output)
    assert "recorded by root <root@example.com>, not by you (root <bob@example.com>)" in out
    assert "nothing ran" in out and not seen.exists()


def test_a_record_that_names_no_identity_to_confirm_is_taken_as_someone_else_s(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch, victim: dict[str, str]
) -> None:
    """An older record (no e-mail) bearing your OS user name still asks."""
    seen = recorded(repo, tether, monkeypatch, "victim")
    rewritten(repo, "job", lambda body: body.pop("email", None))
    out = flat(tether("reproduce", "job", expect=3).output)
    assert "recorded by victim, not by you (victim <victim@example.com>)" in out
    assert "nothing ran" in out and not seen.exists()
    assert "REPRODUCED" in tether("reproduce", "job", "--yes", expect=0).output
