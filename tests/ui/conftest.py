"""One seeded team server and one headless Chromium (Debian's, driven by Playwright) for the UI
tests of a session. The runs reach the server as a user's would: logged in a real repository
and uploaded by `tether sync`. Every page a test opens fails it on a console error."""

from __future__ import annotations

import io
import math
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVICES, git, make_repo
from tests.prompts.test_eval import CSV, SUITE
from tests.server.conftest import Server, launch
from tether.api import Project, generate_key, trust_key

pytestmark = pytest.mark.slow

HOSTILE = '<img src=x onerror="window.__pwned=1">'
SPIKY_POINTS = 100_000
PROMPT_META = (
    "variables:\n  review: {type: string}\noutput: {format: label, labels: [positive, negative]}\n"
)


@dataclass
class Seeded:
    server: Server
    project: str
    reader: str  # a reader's token
    runs: dict[str, str]  # name -> id
    repo: Path  # the clone the runs were made in, pointed at the server
    evals: list[str]  # the eval runs of sentiment v1.0.0 and v1.1.0


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("ui-server")
    env = {**os.environ, "TETHER_TOKEN": ""}
    server = launch(f"sqlite:///{folder / 'server.db'}", str(folder / "store"), env)
    try:
        project = server.new_project()
        reader = server.token_for("reader-ui", "reader", project)
        repo = make_repo(folder / "repo")
        (repo / "train.py").write_text("print('train')\n")
        Project.init(repo)
        runs: dict[str, str] = {}
        for i, (lr, opt) in enumerate([(0.1, "adam"), (0.01, "sgd"), (0.001, "adam")]):
            with Project.open(repo).start_run(name=f"lr-{lr}") as run:
                run.log_params({"lr": lr, "opt": opt, "epochs": 3})
                for step in range(20):
                    run.log_metric("loss", 1 / (step + 1 + i), step=step)
                run.log_metric("acc", 0.5 + 0.1 * i)
                runs[f"lr-{lr}"] = run.id
        (repo / "raw.csv").write_text("x\n1\n2\n")
        with Project.open(repo).start_run(name="prepare") as run:
            run.log_input(repo / "raw.csv")
            (repo / "clean.csv").write_text("x\n1\n")
            run.log_output(repo / "clean.csv")
            runs["prepare"] = run.id
        with Project.open(repo).start_run(name="train") as run:
            run.log_input(repo / "clean.csv")
            (repo / "model.pkl").write_bytes(b"weights")
            run.log_output(repo / "model.pkl")
            runs["train"] = run.id
        out = repo / "out"
        out.mkdir()
        (out / "evil.html").write_text("<script>window.parent.__pwned=4</script>")
        (out / "evil.svg").write_text(
            '<svg xmlns="http://www.w3.org/2000/svg"><script>window.__pwned=5</script></svg>'
        )
        (out / "scores.csv").write_text('name,score\n"<script>x</script>",0.9\nb,0.8\n')
        (out / "notes.txt").write_text("</pre><script>window.__pwned=6</script>")
        with Project.open(repo).start_run(name=HOSTILE) as run:
            run.log_param("bold", "<script>window.__pwned=2</script>")
            run.set_tag("team", "</td><script>window.__pwned=3</script>")
            run.log_artifact(out)
            runs["hostile"] = run.id
        with Project.open(repo).start_run(name="spiky") as run:
            for step in range(SPIKY_POINTS):
                value = math.sin(step / 500)
                if step == 77_777:
                    value = 50.0  # one spike: M4 must keep it
                if step == 12_345:
                    value = math.nan
                run.log_metric("signal", value, step=step)
            runs["spiky"] = run.id
        for name, acc in (("two\nlines", 0.12345671), ("close-b", 0.12345674)):
            with Project.open(repo).start_run(name=name) as run:
                run.log_metric("acc", acc, step=0)
                run.log_metric("acc", acc, step=1)
                runs[name] = run.id
        with Project.open(repo).start_run(name="long-" + "n" * 200) as run:
            run.log_param("p" * 120, "v" * 300)  # someone else's long names and values
            for step in range(3):
                run.log_metric("m" * 120, step / 2, step=step)
            runs["long"] = run.id
        printed = "print('epoch 1 done'); print('</pre><script>window.__pwned=7</script>')"
        launched = Project.open(repo).run(
            [sys.executable, "-c", printed], name="logged", stdout=io.BytesIO()
        )
        runs["logged"] = launched.run_id
        Project.open(repo).amend_run(
            launched.run_id, tags={"stage": "<b>gold</b>"}, note="<script>window.__pwned=8</script>"
        )
        with Project.open(repo).start_run(name="doomed") as run:
            runs["doomed"] = run.id
        Project.open(repo).delete_run(run.id, "a bad seed")
        Project.open(repo).server_login(server.url, project, server.admin_token)
        Project.open(repo).sync()
        # decisions go to the server as they are made (the project is pointed at it)
        for version, template in (
            ("v1.0.0", "R: {{ review }}"),
            ("v1.1.0", "Review: {{ review }}"),
        ):
            base = repo / "prompts" / "sentiment" / version
            base.mkdir(parents=True)
            (base / "prompt.yaml").write_text(PROMPT_META)
            (base / "template.jinja2").write_text(template)
        (repo / "data").mkdir()
        for i in range(3):
            (repo / "data" / f"part-{i}.csv").write_text(f"x\n{i}\n")
        Project.open(repo).add([str(repo / "data")])
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "feat: prompts")
        Project.open(repo).sync()  # this revision's data objects
        prompts = Project.open(repo).prompts
        for version in ("v1.0.0", "v1.1.0"):
            prompts.register(f"sentiment@{version}")
        prompts.promote("sentiment@v1.0.0", "production")
        prompts.promote("sentiment@v1.1.0", "production")
        prompts.rollback("sentiment", "production")
        (repo / "data" / "part-0.csv").write_text("x\n100\n")  # a second revision of the data
        (repo / "data" / "part-3.csv").write_text("x\n3\n")
        Project.open(repo).add([str(repo / "data")])
        base = repo / "prompts" / "sentiment" / "v1.2.0"
        base.mkdir(parents=True)
        (base / "prompt.yaml").write_text(PROMPT_META)
        (base / "template.jinja2").write_text("Review, briefly: {{ review }}")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "feat: more data")
        prompts.register("sentiment@v1.2.0")
        prompts.push("sentiment", "tether")  # the tags bring their commits to the server
        Project.open(repo).sync()  # and the data's objects
        evals = repo / "evals"
        evals.mkdir()
        (evals / "sentiment.yaml").write_text(SUITE)
        (evals / "more.csv").write_text(CSV)
        library = Project.open(repo).prompts
        suite = library.load_suite(evals / "sentiment.yaml")
        evaluated = [
            library.evaluate(
                library.resolve(f"sentiment@{version}"), suite, library.provider(suite, "scripted")
            ).run
            for version in ("v1.0.0", "v1.1.0")
        ]
        Project.open(repo).sync()  # the eval runs
        models = Project.open(repo).models
        models.register("model", run=runs["train"], path="model.pkl", description=HOSTILE)
        models.set_alias("model@v1", "champion")
        (repo / "model.pkl").write_bytes(b"weights, again")
        with Project.open(repo).start_run(name="retrain") as run:
            run.log_output(repo / "model.pkl")
            runs["retrain"] = run.id
        Project.open(repo).sync()
        models.register("model", run=runs["retrain"], path="model.pkl")
        keys = folder / "keys"
        names = ("TETHER_KEYS_DIR", "TETHER_SIGNING_KEY")
        before = {name: os.environ.get(name) for name in names}
        try:  # a request is signed by its author's key: Ann's, trusted in tether.toml
            made = generate_key("ann@example.com", keys)
            os.environ["TETHER_KEYS_DIR"] = str(keys)
            os.environ["TETHER_SIGNING_KEY"] = str(made.private_path)
            here = Path.cwd()
            os.chdir(repo)
            try:
                trust_key(made.public_pem, "ann@example.com")
            finally:
                os.chdir(here)
            Project.open(repo).models.request("model@v2", "production", "better on the holdout")
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        yield Seeded(server, project, reader, runs, repo, [str(e) for e in evaluated])
    finally:
        server.stop()


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if REQUIRE_SERVICES:
            pytest.fail("playwright is not installed (pip install playwright)")
        pytest.skip("playwright is not installed: the UI's browser tests skipped")
    exe = chromium_path()
    if exe is None:
        if REQUIRE_SERVICES:
            pytest.fail("Chromium is not installed: apt-get install chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium): browser tests skipped")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield chromium
        chromium.close()


SHOTS = Path(__file__).resolve().parents[2] / "benchmarks" / ".work" / "ui-shots"


@pytest.fixture
def page(browser: Any, seeded: Seeded, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A logged-in reader's page at 1280x800; any console error or page error fails the test."""
    context, tab, errors = logged_in(browser, seeded)
    yield tab
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == [], f"console errors: {errors}"


def logged_in(
    browser: Any, seeded: Seeded, token: str | None = None, project: str | None = None,
    **options: Any,
) -> tuple[Any, Any, list[str]]:  # fmt: skip
    """A new browser context logged in (as the reader, or with ``token``) through the login
    page: the context, its page (on the runs table of the seeded ``project``, or of this one)
    and the console errors it collects."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, **options)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(f"{seeded.server.url}/login")
    tab.fill("#token", token or seeded.reader)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{seeded.server.url}/p/{project or seeded.project}/runs")
    return context, tab, errors
