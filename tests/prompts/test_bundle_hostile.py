"""A prompt version's file names come from whoever committed it, and a bundle's from whoever
wrote the file: `tether prompt bundle` and `tether.prompts.load` take only names git would check
out into the version's own folder (no `..`, no backslash, no .git or .tether in any spelling, no
two names one filesystem takes for one file), and refuse the rest before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Tether, git, write_files
from tests.prompts.conftest import contents, rewrite
from tether._paths import problem
from tether.errors import TetherError, UnsafePathError
from tether.prompts.runtime import clear_cache, load
from tether.prompts.templates import content_id

META = "variables:\n  review: {type: string}\n"


@pytest.fixture(autouse=True)
def prompts_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_PROMPTS_CACHE", str(tmp_path / "prompts-cache"))
    clear_cache()


def promote(repo: Path, tether: Tether, version: str, extra: dict[str, str]) -> None:
    """``sentiment@version`` with ``extra`` files beside its own, committed, registered and
    labelled production: what a teammate with push access can do with the plain CLI."""
    base = f"prompts/sentiment/{version}"
    files = {"prompt.yaml": META, "template.jinja2": "R: {{ review }}", **extra}
    write_files(repo, {f"{base}/{name}": text for name, text in files.items()})
    git(repo, "add", "prompts")
    git(repo, "commit", "-qm", f"sentiment {version}")
    tether("prompt", "register", f"sentiment@{version}")
    tether("prompt", "promote", f"sentiment@{version}", "--label", "production")


HOSTILE = {
    "a Windows path that climbs out": ("..\\..\\evil.py", "backslash"),
    "a name for .tether": (".Tether", "reserved for git and Tether"),
    "a name macOS takes for the template": ("Template.jinja2", "the same file where case"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_prompt_bundle_refuses_a_version_whose_file_names_git_would_not_check_out(
    repo: Path, tether: Tether, case: str
) -> None:
    name, why = HOSTILE[case]
    promote(repo, tether, "v1.0.0", {name: "import os\n"})
    out = tether("prompt", "bundle", "--label", "production", "-o", "bundle.json", expect=4)
    assert "sentiment@v1.0.0" in out.output and repr(name) in out.output and why in out.output
    assert not (repo / "bundle.json").exists()
    with pytest.raises(UnsafePathError, match=why):  # nor is it served from git
        load("sentiment", label="production")


@pytest.mark.parametrize(
    ("files", "why"),
    [
        ({".git": "x"}, "reserved"),
        ({".gi\u200ct": "x"}, "reserved"),
        ({"sub/x": "x"}, "outside its own folder"),
        ({"..": "x"}, "climbs out"),
        ({"a\\..\\b": "x"}, "backslash"),
        ({"Prompt.yaml": META}, "the same file where case"),
        ({"caf\u00e9": "x", "cafe\u0301": "x"}, "Unicode normalisation"),
    ],
    ids=[".git", "hfs .git", "subfolder", "dots", "backslash", "case", "unicode"],
)
def test_a_bundle_whose_file_names_were_rewritten_is_refused_on_load(
    repo: Path, tether: Tether, tmp_path: Path, files: dict[str, str], why: str
) -> None:
    """A bundle signed by a trusted key, rewritten with matching content ids, still gets its
    names checked."""
    promote(repo, tether, "v1.0.0", {})
    bundle = tmp_path / "bundle.json"
    tether("prompt", "bundle", "--label", "production", "-o", str(bundle))
    doc = contents(bundle)
    entry = doc["prompts"]["sentiment"]
    entry["files"].update(files)
    entry["content_id"] = content_id({k: v.encode() for k, v in entry["files"].items()})
    rewrite(bundle, doc, sign=True)  # a careless signer: the names are checked all the same
    with pytest.raises(UnsafePathError, match=why):
        load("sentiment", bundle=bundle)


NAMES = st.sampled_from(
    ["notes.md", ".git", ".GIT", "GIT~1", "..", ".", "", "a/b", "a\\b", ".tether", "x\x00"]
) | st.text(max_size=10)


@given(extra=st.dictionaries(NAMES, st.text(max_size=4), max_size=3))
def test_any_file_names_in_a_bundle_load_safely_or_are_refused(
    tmp_path: Path, extra: dict[str, str]
) -> None:
    """A bundle with any extra file names (ids rewritten to match): it loads, and every name is
    one git would check out into the version's folder, or it is refused with a TetherError."""
    files = {"prompt.yaml": META, "template.jinja2": "R: {{ review }}", **extra}
    ids = content_id({k: v.encode() for k, v in files.items()})
    entry = {"label": "production", "version": "v1.0.0", "content_id": ids, "files": files}
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"tether": "prompt-bundle", "format": 2, "signed": {}}))
    rewrite(bundle, {"label": "production", "prompts": {"sentiment": entry}}, sign=True)
    clear_cache()
    try:
        prompt = load("sentiment", bundle=bundle)
    except TetherError:
        return
    for name in prompt.files:
        assert "/" not in name and problem(name) is None
