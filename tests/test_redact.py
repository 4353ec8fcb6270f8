"""Redaction rules: what must be hidden (judged by the value's shape, not a name alone), what must
stay (ordinary ML code), the allow-list, and no pathological slowness.

Every secret here is built at test time from obviously fake parts, so no real-looking credential
sits in the repository for a scanner to flag.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.redact import MASK, Redactor, looks_like_secret_file

AWS_ID = "AKIA" + "A" * 16
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCY" + "EXAMPLEKEY"
FAKE = "Ab1" * 14  # 42 mixed characters: format-valid filler for a token's random part
GCP_KEY_ID = "ab12" * 10
PEM_BODY = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "FAKEFAKEFAKEFAKEFAKEFAKEFAKE0000"]
PEM = "\n".join(["-----BEGIN " + "PRIVATE KEY-----", *PEM_BODY, "-----END " + "PRIVATE KEY-----"])
JWT = (
    "eyJ" + "hbGciOiJIUzI1NiJ9" + ".eyJ" + "zdWIiOiIxMjM0NTY3ODkwIn0" + "." + "c2lnbmF0dXJlX2Zha2U"
)

# (the rule's name, a line holding a secret, the secret)
KNOWN_FORMATS = [
    ("aws-access-key-id", f"aws_access_key_id = {AWS_ID}", AWS_ID),
    ("aws-secret-access-key", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
    ("gcp-private-key-id", f'  "private_key_id": "{GCP_KEY_ID}",', GCP_KEY_ID),
    ("gcp-api-key", "key = AIza" + "B" * 35, "AIza" + "B" * 35),
    ("github-token", "export GH=ghp_" + FAKE, "ghp_" + FAKE),
    ("github-token", "gho_" + FAKE, "gho_" + FAKE),
    ("github-token", "url: github_pat_" + FAKE, "github_pat_" + FAKE),
    ("slack-token", "SLACK=xoxb-" + "1234-" + FAKE, "xoxb-1234-" + FAKE),
    ("stripe-key", "sk_" + "live_" + FAKE, "sk_live_" + FAKE),
    ("stripe-key", "rk_" + "live_" + FAKE, "rk_live_" + FAKE),
    ("stripe-key", "sk_" + "test_" + FAKE, "sk_test_" + FAKE),
    ("openai-key", "client = OpenAI(api_key='sk-" + FAKE + "')", "sk-" + FAKE),
    ("openai-key", "OPENAI_API_KEY=sk-proj-" + FAKE, "sk-proj-" + FAKE),
    ("huggingface-token", "login(hf_" + FAKE + ")", "hf_" + FAKE),
    ("tether-token", "echo tth_0a1b2c3d4e5f_" + "Zq9" * 14 + "x;", "Zq9" * 14 + "x"),
    ("jwt", f"cookie {JWT} end", JWT),
    ("url-password", "DATABASE_URL=postgres://u:pw@host/db", ":pw@"),
    ("bearer-token", "curl -H 'X: Bearer " + FAKE + "'", FAKE),
    ("basic-auth", "Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("authorization-header", "Authorization: Token 9944b09199c62bcf9418ad84", "9944b0919"),
]


@pytest.mark.parametrize(("rule", "text", "secret"), KNOWN_FORMATS)
def test_each_known_token_format_is_masked(rule: str, text: str, secret: str) -> None:
    out, masked = Redactor().redact_lines(text)
    assert secret not in out and MASK in out
    assert rule in {m.rule for m in masked}


def test_a_private_key_block_is_masked_and_keeps_its_lines() -> None:
    """In a patch the block's lines keep their + so the patch still parses."""
    diff = "\n".join("+" + line for line in PEM.split("\n"))
    out, masked = Redactor().redact_lines(diff)
    assert not any(part in out for part in PEM_BODY)
    assert out.split("\n") == [
        "+-----BEGIN PRIVATE KEY-----",
        "+***",
        "+***",
        "+-----END PRIVATE KEY-----",
    ]
    assert {(m.line, m.rule) for m in masked} == {
        (1, "private-key-block"),
        (2, "private-key-block"),
    }


def test_a_gcp_service_account_json_is_masked() -> None:
    key = PEM.replace("\n", "\\n")
    doc = (
        '{"type": "service_account", "project_id": "demo",\n'
        f' "private_key_id": "{GCP_KEY_ID}",\n "private_key": "{key}\\n",\n'
        ' "client_email": "bot@demo.iam.gserviceaccount.com"}'
    )
    out = Redactor().redact(doc)
    assert GCP_KEY_ID not in out and not any(part in out for part in PEM_BODY)
    assert '"project_id": "demo"' in out and "bot@demo" in out


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('api_key = "sk-live-looking-random-' + "Xk29dPq81Lm" + '"', "Xk29dPq81Lm"),
        (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
        ("password: hunter2pass", "hunter2pass"),
        ("postgres://u:pw@host/db", ":pw@"),
        ("python train.py --api-key sk-abcdefghijklmnopqrstuv1x --lr 0.1", "sk-abcdefghijklmno"),
        ("--db-password hunter2", "hunter2"),
        ("DB_PASSWORD=hunter2 make", "hunter2"),
        ("  - DB_PASSWORD=hunter2", "hunter2"),
        ('{"password": "hunter2"}', "hunter2"),
        ('config["password"] = "hunter2"', "hunter2"),
        ('password = "correct horse battery"', "correct horse"),
        ("GITHUB_TOKEN=abc123def456ghi789", "abc123def456ghi789"),
        ('{"token": "Xk29dPq81LmZ07aBc"}', "Xk29dPq81LmZ07aBc"),
        ("Authorization: Bearer abcdefghijkl", "abcdefghijkl"),
        ("client_secret: 8Q~abc.DEF_ghi-123", "8Q~abc"),
        ("[database]\npassword = s3cr3t!", "s3cr3t!"),
    ],
)
def test_a_secret_looking_name_masks_a_literal_that_looks_like_a_credential(
    text: str, secret: str
) -> None:
    out = Redactor().redact(text)
    assert secret not in out and MASK in out


ML_CODE = [
    "pad_token_id = tokenizer.eos_token_id",
    'eos_token = "</s>"',
    "max_tokens = 512",
    "tokenizer.pad_token = tokenizer.eos_token",
    "token_ids = [1, 2]",
    'password = os.environ["DB_PASSWORD"]',
    "model.config.pad_token_id = model.config.eos_token_id",
    "tokenizer.add_special_tokens({'pad_token': '[PAD]'})",
    'special_tokens = {"pad_token": "[PAD]", "unk_token": "<unk>"}',
    'tokens = tokenizer("hello", return_tensors="pt")',
    "batch = {'input_ids': ids, 'token_type_ids': tt}",
    'token = "hello"',
    "token = tokenizer(text)",
    "access_token = response.json()['access_token']",
    "api_key = None",
    "password: str = None",
    "def connect(password: str, api_key: Optional[str] = None) -> Conn:",
    "    password=password,",
    "conn = connect(host=h, password=pw)",
    'print("connecting with password=" + os.environ["LOG_PW"])',
    'headers = {"Authorization": f"Bearer {token}"}',
    'headers = {"Authorization": auth_header}',
    'api_key_env = "OPENAI_API_KEY"',
    'password_file = "/run/secrets/db"',
    "secret = secrets.token_hex(16)",
    "DATABASE_URL=postgres://user:${DB_PASSWORD}@host/db",
    'url = f"postgres://{user}:{pw}@host/db"',
    "password: ${DB_PASSWORD}",
    "unk_token: <unk>",
    "# basic preprocessing of the dataset; bearer authentication is elsewhere",
    "python train.py --pad-token-id 0 --eos-token '</s>' --max-tokens 512",
    "# the password is read from the environment (no password: put that in .env)",
    'GOOGLE_APPLICATION_CREDENTIALS="/content/key.json"',
]


@pytest.mark.parametrize("line", ML_CODE)
def test_ordinary_ml_code_passes_untouched(line: str) -> None:
    assert Redactor().redact(line) == line


@pytest.mark.parametrize("text", ["max_tokens=512", "author: bob", "the secret sauce", "lr=0.1"])
def test_ordinary_text_stays(text: str) -> None:
    assert Redactor().redact(text) == text


def test_user_rules_and_keys() -> None:
    r = Redactor(extra_patterns=[r"ACME-\d{6}"], extra_keys=["license"])
    assert r.redact("id ACME-123456 ok") == f"id {MASK} ok"
    assert r.redact_value("license", "abc") == MASK
    assert r.redact_value("api_key", "abc") == MASK
    assert r.redact_value("lr", "0.1") == "0.1"


def test_a_parameter_named_like_a_secret_keeps_a_value_that_is_code() -> None:
    r = Redactor()
    assert r.redact_value("eos_token", "</s>") == "</s>"
    assert r.redact_value("pad_token_id", "0") == "0"
    assert r.redact_value("pad_token", "tokenizer.eos_token") == "tokenizer.eos_token"
    assert r.redact_value("api_key", "${OPENAI_API_KEY}") == "${OPENAI_API_KEY}"
    assert r.redact_value("db_password", "param-secret-value-42") == MASK
    assert r.redact_value("pin_password", "1234") == MASK  # for a password, a number is one


def test_an_allowed_pattern_is_never_masked() -> None:
    fixture = "sk_" + "test_" + "fixtureFIXTURE0000"
    text = f"stripe = '{fixture}'\nkey = '{AWS_ID}'\npassword: hunter2pass"
    r = Redactor(allow=[r"sk_test_fixture\w+", "hunter2pass"])
    out = r.redact(text)
    assert fixture in out and "hunter2pass" in out and AWS_ID not in out
    assert Redactor(allow=[AWS_ID]).redact_value("aws_key", AWS_ID) == AWS_ID


def test_masks_are_reported_by_line_and_keep_every_line() -> None:
    text = "a = 1\npassword: hunter2pass\nb = 2\n" + f"key = {AWS_ID}\n"
    out, masked = Redactor().redact_lines(text)
    assert out.count("\n") == text.count("\n")
    assert [(m.line, m.rule) for m in masked] == [
        (1, "secret-assignment"),
        (3, "aws-access-key-id"),
    ]


def test_redaction_is_idempotent_and_keeps_binary() -> None:
    r = Redactor()
    once = r.redact("DB_PASSWORD=hunter2")
    assert r.redact(once) == once
    # one NUL does not make a log binary: the text around it is still redacted
    assert r.redact_bytes(b"\0\1password=hunter2\0") == b"\0\1password=***\0"
    assert r.redact_bytes(b"caf\xe9 password=hunter2\n") == b"caf\xe9 password=***\n"  # not UTF-8


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
    for junk in (
        "x" * 1_000_000,
        "-" * 1_000_000,
        "a:" * 500_000,
        "ab://" * 200_000,
        "password=" * 100_000,
        "token " * 100_000,
        '"password": "' * 50_000,
        "-----BEGIN PRIVATE KEY-----" * 20_000,
    ):
        r.redact(junk)
    assert time.perf_counter() - start < 20


def test_user_patterns_with_flags_and_back_references_still_mask() -> None:
    # the pre-check joins every rule into one pattern; rules it cannot join still apply
    r = Redactor(extra_patterns=[r"(?i)internal-\d{4}", r"(?P<q>['\"])hunter2(?P=q)"])
    assert r.redact("id INTERNAL-1234 here") == "id *** here"
    assert r.redact("pw 'hunter2' end") == "pw *** end"
    assert r.redact("plain text stays") == "plain text stays"


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        (".env", True),
        ("config/.env.production", True),
        ("deploy/id_rsa", True),
        ("keys/id_ed25519.pub", True),
        ("certs/server.pem", True),
        ("tls.key", True),
        ("store.p12", True),
        (".netrc", True),
        (".pgpass", True),
        (".aws/credentials", True),
        ("credentials.json", True),
        ("vault.kdbx", True),
        ("service-account-prod.json", True),
        ("train.py", False),
        ("env.py", False),
        ("credentials_helper.py", False),
        ("data/keys.csv", False),
    ],
)
def test_files_named_like_secrets_are_known_by_name_in_any_folder(path: str, secret: bool) -> None:
    assert looks_like_secret_file(path) is secret


# Fragments that make the rules fire, mixed with arbitrary text: plain random text almost never
# reaches the judging code.
FRAGMENTS = st.sampled_from(
    [
        "password", "token", "api_key", "secret", "Authorization", "Bearer ", "Basic ", "=", ": ",
        " = ", '"', "'", "\\", "\n", "\n+", " ", "--", "://", "@", ":", "${", "}", "<", ">", "(",
        ")", "[", "]", ",", "***", "*", "AKIA", "A" * 16, "sk-", "hf_", "ghp_", "eyJ", ".", "_",
        "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "hunter2", "Xk29dPq81LmZ07aB",
        "aws_secret_access_key", "\\n", "\u017f", "\u212a", "\u0130",
    ]
)  # fmt: skip
TEXTS = st.lists(st.one_of(FRAGMENTS, st.text(max_size=12)), max_size=40).map("".join)


@given(TEXTS)
def test_redaction_never_raises_is_idempotent_and_keeps_lines(text: str) -> None:
    r = Redactor(allow=["hunter2"], extra_patterns=[r"ACME-\d+"])
    once, masked = r.redact_lines(text)
    assert r.redact(once) == once
    assert once.count("\n") == text.count("\n")
    assert all(0 <= m.line <= text.count("\n") for m in masked)


@given(st.text(max_size=300))
def test_redaction_of_arbitrary_text_never_raises_and_is_idempotent(text: str) -> None:
    r = Redactor()
    once = r.redact(text)
    assert r.redact(once) == once


HEX32 = "3f9a1c2b" * 4
HEX40 = "3f9a1c2b7d" * 4
TOKEN = "x9Fk2LmQ7pR4sT1vW8yZ" + "abcd"
PW = "Hunter2" + "Rocks"
B64 = "YWxpY2U6" + "SHVudGVyMlJvY2tzIQ=="  # alice:Hunter2Rocks!
AZURE = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6" + "IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('"SecretAccessKey": "' + AWS_SECRET + '",', AWS_SECRET),
        ("{'SecretAccessKey': '" + AWS_SECRET + "', 'Expiration': x}", AWS_SECRET),
        ('      - "POSTGRES_PASSWORD=' + PW + '"', PW),
        ('      - "WANDB_API_KEY=' + TOKEN + '"', TOKEN),
        ('"args": ["--api-key=' + TOKEN + '"]', TOKEN),
        ('"args": ["--password", "' + PW + '"]', PW),
        ('"args": ["--api-key", "' + TOKEN + '"]', TOKEN),
        ('subprocess.run(["env", "DB_PASSWORD=' + PW + '", "python"])', PW),
        ("password = " + PW, PW),
        ('{"username":"alice","key":"' + HEX32 + '"}', HEX32),
        ("AccountName=ml;AccountKey=" + AZURE + ";EndpointSuffix=core.windows.net", AZURE),
        ('{"auths": {"registry.example.com": {"auth": "' + B64 + '"}}}', B64),
        ("VAULT_TOKEN=hvs." + FAKE, FAKE),
        ("glpat-" + TOKEN, TOKEN),
        ("npm_" + FAKE[:36], FAKE[:36]),
        ("pypi-AgE" + FAKE, FAKE),
        ("SG." + FAKE[:22] + "." + FAKE[:40], FAKE[:22]),
        ("r8_" + FAKE, FAKE),
        ("ENV DB_PASSWORD " + PW, PW),
        ("ENV WANDB_API_KEY " + HEX40, HEX40),
        ("mysql -u root -p" + PW + " mydb", PW),
        ("curl -u admin:" + PW + " https://host", PW),
        ("<password>" + PW + "</password>", PW),
        ("db:\n  password: |\n    " + PW + "\n  user: bob", PW),
    ],
)
def test_secrets_precisely_secrets_in_lists_commands_and_other_formats_are_masked(
    text: str, secret: str
) -> None:
    out = Redactor().redact(text)
    assert secret not in out and MASK in out
    assert out.count("\n") == text.count("\n")


@pytest.mark.parametrize(
    "text",
    [
        'api_key = "your-api-key"',
        'api_key = "sk-..."',
        "OPENAI_API_KEY=sk-" + "x" * 32,
        'access_token = "test-token-for-unit-tests"',
        'api_key = "dummy-key-for-tests-12345"',
        'region = "ASIA' + 'PACIFICSOUTHEAST"',
        'seq = "AKIA' + 'GLLVAVLLLAPSAAQA"',
        "password = db_password",
        "docker run -u 1000:1000 img",
        "mysql -P 3306 -p mydb",
    ],
)
def test_secrets_precisely_placeholders_test_values_and_words_are_not_masked(text: str) -> None:
    assert Redactor().redact(text) == text


def test_secrets_precisely_a_bare_value_in_config_is_a_literal() -> None:
    r = Redactor()
    assert r.redact("password = hunter2") == "password = hunter2"  # Python: a variable
    assert r.redact_lines("password = hunter2", literal=True)[0] == "password = ***"


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        (".env.example", False),
        ("app/.env.sample", False),
        (".env.template", False),
        (".env.dist", False),
        (".env.local", True),
        (".kaggle/kaggle.json", True),
    ],
)
def test_secrets_precisely_env_templates_are_no_secret_files_and_kaggle_json_is(
    path: str, secret: bool
) -> None:
    assert looks_like_secret_file(path) is secret


def test_secrets_precisely_the_command_masks_passwords_keys_and_user_passwords() -> None:
    from tether.runs.lifecycle import redact_argv

    argv = [
        "train.py", "--db-pass", "hunter2", "--pw=hunter2", "--wandb-key", HEX40, "-u",
        "admin:hunter2", "--kaggle_key", HEX32, "--pad-token-id", "0", "--max-tokens", "512",
        "--tokenizer", "gpt2", "--sort-key", "name",
    ]  # fmt: skip
    out = redact_argv(Redactor(), argv)
    assert out == [
        "train.py", "--db-pass", MASK, "--pw=***", "--wandb-key", MASK, "-u", "admin:***",
        "--kaggle_key", MASK, "--pad-token-id", "0", "--max-tokens", "512", "--tokenizer",
        "gpt2", "--sort-key", "name",
    ]  # fmt: skip
    assert redact_argv(Redactor(), ["curl", "-u", "admin:S3cr3tPass", "https://h"])[2] == (
        "admin:***"
    )
    r = Redactor()
    assert r.redact_value("db_pass", "hunter2") == MASK
    assert r.redact_value("kaggle_key", HEX32) == MASK
    assert r.redact_value("sort_key", "name") == "name"
