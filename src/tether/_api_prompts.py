"""The prompt templates' verbs, as ``Project.prompts`` (or :func:`tether.api.prompts_here`, which
needs only a git repository) gives them. Each loads its module when first used."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.events.sync import Pulled
    from tether.prompts.evaluate import EvalResult
    from tether.prompts.gate import Compared
    from tether.prompts.labels import Assignment
    from tether.prompts.providers import Provider
    from tether.prompts.registry import Registered
    from tether.prompts.runtime import Pin
    from tether.prompts.suite import Suite
    from tether.prompts.templates import Prompt
    from tether.workspace.repo import Workspace


@dataclass
class Imported:
    """``tether prompt import promptfoo``: the suite's text, its case count, the parts left out
    (``refused``) and what was ignored (``notes``)."""

    text: str
    cases: int
    refused: list[str]
    notes: list[str]


@dataclass
class CiReport:
    """``tether prompt ci``: each changed version against its label, or alone without one."""

    compared: list[Compared]
    alone: list[EvalResult]
    markdown: str
    refused: list[str] = field(default_factory=list)  # changes refused, each with its reason

    @property
    def passed(self) -> bool:
        return (
            not self.refused
            and all(c.passed for c in self.compared)
            and all(e.passed for e in self.alone)
        )


class PromptLibrary:
    def __init__(self, root: Path, ws: Workspace | None = None) -> None:
        self.root = root
        self._ws = ws

    @property
    def ws(self) -> Workspace:
        """The Tether project (labels, evals and their runs need one; templates do not)."""
        if self._ws is None:
            from tether.workspace.repo import Workspace

            self._ws = Workspace.open(self.root)
        return self._ws

    # -- templates ---------------------------------------------------------------------------
    def _project_ws(self) -> Workspace | None:
        """The workspace when this repository is a Tether project (its registry is read)."""
        from tether.config import PROJECT_FILE

        return self.ws if (self.root / PROJECT_FILE).exists() else None

    def resolve(self, ref: str, *, check: bool = True) -> Prompt:
        """NAME, NAME@VERSION or NAME@LABEL; refused when registered and changed since
        (``check``)."""
        from tether.prompts import labels, registry, templates

        name, at = templates.parse_ref(ref)
        if at is not None and not templates.VERSION.match(at):
            at = labels.version_for(self.ws, name, at)
        missing = at is not None and at not in templates.versions(self.root, name)
        if missing and at in registry.registered(self.root, name):
            from tether.prompts.runtime import registered_version

            return registered_version(self.root, name, at)  # not in this work tree: as registered
        loaded = templates.load(self.root, name, at)
        if check:
            registry.check_unchanged(self.root, loaded)
        return loaded

    def new(self, name: str, *, chat: bool = False) -> Prompt:
        from tether._api_names import claim_prompt
        from tether.prompts import authoring

        claim_prompt(self.root, self._project_ws(), name)
        return authoring.new(self.root, name, chat=chat)

    def bump(self, name: str, part: str, base: str | None = None) -> Prompt:
        """The next version of ``base`` (a version or a label; default: the newest)."""
        from tether.prompts import authoring, registry

        version = self.resolve(f"{name}@{base}", check=False).version if base else None
        taken = registry.registered(self.root, name)
        made = authoring.bump(self.root, name, part, version, taken=set(taken))
        return made

    def names(self) -> list[str]:
        from tether.prompts import templates

        return templates.names(self.root)

    def versions(self, name: str) -> list[str]:
        from tether.prompts import templates

        return templates.versions(self.root, name)

    def registered(self, name: str) -> dict[str, Registered]:
        from tether.prompts import registry

        return registry.registered(self.root, name)

    def register(self, ref: str) -> tuple[Prompt, Registered]:
        from tether._api_names import claim_prompt
        from tether.prompts import registry

        p = self.resolve(ref, check=False)
        claim_prompt(self.root, self._project_ws(), p.name)
        return p, registry.register(self.root, p)

    def diff(self, a: str, b: str) -> str:
        from tether.prompts import authoring

        return authoring.diff(self.resolve(a, check=False), self.resolve(b, check=False))

    def lint(self, refs: list[str], suite: Path | None = None) -> list[str]:
        """The problems of ``refs`` (default: the newest version of each prompt); a suite's
        cases must give every required variable. A malformed prompt is a problem, not an error."""
        from tether.prompts import authoring, templates
        from tether.prompts import suite as suites

        cases = (
            [(dict(c.vars), c.text_vars) for c in suites.load_suite(suite).cases] if suite else None
        )
        problems: list[str] = []
        for ref in refs or self.names():
            try:
                problems += authoring.lint(self.resolve(ref, check=False), cases)
            except templates.PromptError as exc:
                problems.append(str(exc))
        return problems

    def values(
        self, p: Prompt, given: dict[str, str], vars_file: Path | None = None
    ) -> dict[str, Any]:
        """``vars_file`` (YAML or JSON) then ``given`` (text, read as each variable's type)."""
        from tether._documents import load_yaml
        from tether.errors import UsageError

        values: dict[str, Any] = {}
        if vars_file is not None:
            doc = load_yaml(vars_file.read_bytes()) or {}
            if not isinstance(doc, dict):
                raise UsageError(f"{vars_file} must hold a mapping of variable -> value")
            values.update(doc)
        values.update(given)
        return p.typed(values, frozenset(given))

    # -- evaluation --------------------------------------------------------------------------
    def load_suite(self, path: Path) -> Suite:
        from tether.prompts.suite import load_suite

        return load_suite(path)

    def import_promptfoo(self, config: Path, output: Path | None = None) -> Imported:
        """A promptfoo configuration as Tether's suite form, written to ``output`` (which must
        not exist) when given; what could not be converted is named, not raised."""
        from tether.errors import UsageError
        from tether.prompts import promptfoo

        converted = promptfoo.read(config)
        text = promptfoo.as_yaml(converted)
        if output is not None:
            if output.exists():
                raise UsageError(f"{output} exists: name a new file with -o")
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text)
        return Imported(text, len(converted.cases), converted.refused, converted.notes)

    def provider(self, suite: Suite, name: str) -> Provider:
        from tether.prompts import evaluate

        return evaluate.provider_for(self.ws, suite, name)

    def judge(self, suite: Suite) -> Provider | None:
        """The provider ``prompts.judge`` names, for suites that ask a model to grade."""
        name = str(self.ws.config.get("prompts.judge") or "")
        return self.provider(suite, name) if name else None

    def check_suite(self, p: Prompt, suite: Suite, judge: Provider | None) -> None:
        """Refuse a suite that cannot run on ``p`` as configured, naming every problem."""
        from tether.prompts import preflight

        embed = bool(self.ws.config.get("prompts.embeddings"))
        preflight.check(p, suite, root=self.root, judge=judge is not None, embed=embed)

    def evaluate(self, p: Prompt, suite: Suite, provider: Provider, **kw: Any) -> EvalResult:
        """One prompt on one provider (``repeat``, ``jobs``, ``record``, ``progress``,
        ``judge``), recorded as a run."""
        from tether.prompts import evaluate

        return evaluate.evaluate(self.ws, p, suite, provider, **kw)

    @staticmethod
    def eval_html(results: list[EvalResult]) -> str:
        from tether.prompts.report import eval_html

        return eval_html(results)

    def compare(self, a: str, b: str, suite: Suite, provider: Provider, **kw: Any) -> Compared:
        """NAME@A (baseline) and NAME@B on the same cases (``repeat``, ``jobs``,
        ``max_regression``)."""
        from tether.prompts import gate

        pa, pb = self.resolve(a), self.resolve(b)
        return gate.compare_versions(self.ws, pa, pb, suite, provider, **kw)

    @staticmethod
    def comparison_table(done: Compared) -> tuple[list[str], list[list[str]]]:
        from tether.prompts import gate

        return list(gate.HEADER), gate.rows(done.comparison)

    def ci(
        self, base: str, label: str, suite_dir: str, provider: str | None, max_regression: float
    ) -> CiReport:
        """Every version added or changed since ``base`` against the one ``label`` points at;
        what the pull request brings is treated as content (``gate.ci``)."""
        from tether.prompts import gate

        found = gate.ci(self.ws, base, label, suite_dir, provider, max_regression)
        text = gate.markdown(found.compared, found.alone, found.refused)
        return CiReport(found.compared, found.alone, text, found.refused)

    # -- labels ------------------------------------------------------------------------------
    def passing_eval(self, p: Prompt, suite: Path | None = None) -> tuple[str, str]:
        """The newest eval run that is evidence for promoting ``p`` (its id, and the suite's
        content id): of exactly this content, on the suite as committed (``evals/NAME.yaml``
        unless named), by a provider other than the ``scripted`` stand-in, with thresholds
        that all passed (an eval without thresholds has no verdict, so it is no evidence)."""
        from tether.errors import PromptError
        from tether.gitio.repo import git
        from tether.prompts.suite import load_suite
        from tether.runs import catalog

        path = suite or self.root / "evals" / f"{p.name}.yaml"
        if not path.exists():
            raise PromptError(
                f"--require-eval needs {p.name}'s suite: none at {path} (name one with --suite)"
            )
        the_suite = load_suite(path, self.root)
        rel = path.resolve().relative_to(self.root.resolve()).parent.as_posix()
        if git(self.root, "status", "--porcelain", "--", rel).strip():
            raise PromptError(
                f"the suite folder {rel}/ has uncommitted changes: evidence is an eval on the "
                "suite as committed; commit it and run the eval again"
            )
        where = (
            f"tags.kind = 'prompt-eval' and tags.verdict = 'pass' and "
            "status = 'finished' and "
            f"params.`prompt.content_id` = '{p.content_id}' and "
            f"params.`suite.content_id` = '{the_suite.content_id}'"
        )
        # the sealed record decides (tags amended since do not count), on committed code: a
        # `python` check the work tree changed is not the project's
        found = [
            run
            for run in catalog.search(self.ws, where, "started desc", 50)
            if _sealed_evidence(self.ws, run.id, p.content_id, the_suite.content_id)
        ][:1]
        if not found:
            raise PromptError(
                f"no passing eval of {p.ref} (content {p.content_id[:19]}) on {path.name} as "
                f"committed (suite {the_suite.content_id[:19]}), with thresholds, by a real "
                f"provider, with no uncommitted change: run `tether prompt eval {p.ref} --suite "
                f"{path} -p PROVIDER` on a clean work tree (the scripted stand-in is no "
                "evidence)"
            )
        return found[0].id, the_suite.content_id

    def promote(
        self, ref: str, label: str, *, require_eval: bool = False, suite: Path | None = None
    ) -> tuple[Prompt, Assignment, str | None]:
        """Assign ``label`` to a registered version; with ``require_eval`` only when evidence
        is recorded (``passing_eval``): its run and suite are bound into the assignment event
        (the run is the third value)."""
        from tether.prompts import labels

        p = self.resolve(ref)
        run, suite_id = self.passing_eval(p, suite) if require_eval else (None, None)
        with self._decision(p.name):
            done = labels.promote(self.ws, p, label, eval_run=run, suite_id=suite_id)
        return p, done, run

    def rollback(self, name: str, label: str) -> Assignment:
        from tether.prompts import labels

        load: Callable[[str], Prompt] = lambda v: self.resolve(f"{name}@{v}")  # noqa: E731
        with self._decision(name):
            return labels.rollback(self.ws, name, label, load)

    def _decision(self, name: str) -> AbstractContextManager[None]:
        """A label decision, made against the team server when one is set (it then needs it:
        ``_api_decisions``)."""
        from tether._api_decisions import Log, on_server
        from tether.errors import PromptError
        from tether.prompts import labels, sync

        ws = self.ws

        def logs() -> list[Log]:
            return [
                Log(
                    labels.event_log(ws),
                    lambda remote: sync.pull(ws, remote),
                    lambda: sync.push_spec(ws, name),
                    PromptError,
                )
            ]

        return on_server(ws, logs)

    def history(self, name: str) -> tuple[list[Assignment], list[str]]:
        """Every label assignment of ``name``, and each tag that disagrees with the log."""
        from tether.errors import UsageError
        from tether.prompts import labels

        folded = labels.read(self.ws)  # one fold for the assignments and the check
        found = folded.of(name)
        if not found and name not in self.names():
            raise UsageError(f"no prompt {name!r}: `tether prompt list` names them")
        return found, labels.check(self.ws, name, folded)

    def push(self, name: str, remote: str) -> None:
        """``name``'s version and label tags and the label log, in one atomic git push."""
        from tether.prompts import sync

        sync.push(self.ws, name, remote)

    def pull(self, remote: str, *, discard_local: bool = False) -> Pulled:
        """Take the remote's prompt tags and label log: up to date, ahead, a fast-forward, or
        a merge event joining both histories; ``discard_local`` drops this clone's unpushed
        assignments instead of merging them."""
        from tether.prompts import sync

        return sync.pull(self.ws, remote, discard_local=discard_local)

    def bundle(self, names: list[str] | None, label: str, output: Path) -> list[Pin]:
        from tether.prompts import bundles

        return bundles.write(self.root, names, label, output)


def _sealed_evidence(ws: Workspace, run_id: str, content_id: str, suite_id: str) -> bool:
    """The run's record as it was sealed says it is evidence (tags amended since, such as a
    ``verdict=pass`` added to a failed eval, do not count): this content and suite, thresholds
    passed, and a provider that was not the scripted stand-in, whatever it was named."""
    from tether.runs import catalog

    record = catalog.sealed(ws, run_id)
    if record is None:
        return False
    params, tags = record.get("params") or {}, record.get("tags") or {}
    return (
        tags.get("verdict") == "pass"
        and not (record.get("code") or {}).get("dirty", True)
        and params.get("provider.stand_in") == "no"
        and params.get("prompt.content_id") == content_id
        and params.get("suite.content_id") == suite_id
    )
