"""Redacting a captured patch: masks keep the patch's shape, are placed by file and new-version
line, and a patch of any shape (hunks cut short, odd headers, binary data) never breaks it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tether.capture.code import redact_patch
from tether.redact import Redactor

FAKE = "Ab1" * 14
PATCH = "\n".join(
    [
        "diff --git a/cfg.py b/cfg.py",
        "index 1111111..2222222 100644",
        "--- a/cfg.py",
        "+++ b/cfg.py",
        "@@ -1,4 +1,3 @@",
        " a = 1",
        "-password = 'fake-old-pw-1'",
        "-b = 2",
        "+token = '" + FAKE + "'",
        " c = 3",
        "@@ -10 +9,2 @@ def f(password='fake-context-pw'):",
        " d = 4",
        "+api_key = 'fake-api-key-value'",
        "\\ No newline at end of file",
        'diff --git "a/caf\\303\\251.py" "b/caf\\303\\251.py"',
        "new file mode 100644",
        "--- /dev/null",
        '+++ "b/caf\\303\\251.py"',
        "@@ -0,0 +1 @@",
        "+secret = 'fake-secret-value'",
        "diff --git a/blob.bin b/blob.bin",
        "GIT binary patch",
        "literal 20",
        "password=Xk29dPq81LmZ07aBcDe",
        "",
        "",
    ]
)


def test_masks_are_placed_by_file_and_new_line_and_keep_the_patch_shape() -> None:
    out, found = redact_patch(Redactor(), PATCH.encode())
    text = out.decode()
    assert text.count("\n") == PATCH.count("\n")
    assert found == [
        {"file": "café.py", "line": 1, "rule": "secret-assignment"},
        {"file": "cfg.py", "line": 2, "rule": "secret-assignment"},
        {"file": "cfg.py", "line": 10, "rule": "secret-assignment"},
    ]
    for secret in (FAKE, "fake-api-key-value", "fake-secret-value"):
        assert secret not in text
    assert "password=Xk29dPq81LmZ07aBcDe" in text  # binary data is left as git wrote it
    assert redact_patch(Redactor(), out) == (out, [])  # already redacted: nothing more


def test_secrets_precisely_only_added_lines_are_masked_so_the_patch_still_applies() -> None:
    """Context, removed lines and the text after ``@@`` come from the commit: masking them makes
    the patch fail to apply, and places a mask at a line the secret is not on."""
    out, _ = redact_patch(Redactor(), PATCH.encode())
    text = out.decode()
    assert "-password = 'fake-old-pw-1'" in text
    assert "@@ -10 +9,2 @@ def f(password='fake-context-pw'):" in text
    context = "\n".join(
        ["@@ -1,3 +1,3 @@", " a = 1", " api_key = '" + FAKE + "'", "-b = 2", "+b = 3"]
    )
    head = "diff --git a/t.py b/t.py\n--- a/t.py\n+++ b/t.py\n"
    patch = (head + context + "\n").encode()
    assert redact_patch(Redactor(), patch) == (patch, [])


PATCH_LINES = st.sampled_from(
    [
        "diff --git a/x.py b/x.py", "--- a/x.py", "+++ b/x.py", "--- /dev/null", "+++ /dev/null",
        "@@ -1,3 +1,4 @@", "@@ -0,0 +1 @@", "@@ -5 +5 @@ ctx", " context", "-removed", "+added",
        "+password = 'hunter2pass'", "\\ No newline at end of file", "GIT binary patch",
        "literal 12", 'diff --git "a/\\303" "b/\\303"', '+++ "b/\\351\\"', "", "+",
    ]
)  # fmt: skip


@given(st.lists(st.one_of(PATCH_LINES, st.text(max_size=16)), max_size=40))
def test_a_patch_of_any_shape_is_redacted_without_error_and_keeps_its_lines(
    lines: list[str],
) -> None:
    patch = "\n".join(lines).encode("utf-8", "surrogateescape")
    out, found = redact_patch(Redactor(), patch)
    assert out.count(b"\n") == patch.count(b"\n")
    assert all(isinstance(f["file"], str) and f["line"] >= 0 for f in found)
    assert redact_patch(Redactor(), out)[0] == out
