"""What the web UI shows of the prompt evaluations a project's runs hold: each eval run of a
prompt (the runs `tether prompt eval` records, tagged ``kind=prompt-eval``) with its pass rate
and the interval around it, and the paired comparison of two of them on the cases both ran
(:func:`tether.prompts.stats.compare`, the statistics `tether prompt compare` reports)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.errors import MissingOnServerError, UsageError

if TYPE_CHECKING:
    from tether.prompts.stats import Comparison
    from tether.team.hub import Hub

EVALS_SHOWN = 100  # the newest eval runs of one prompt on its page


def prompt_evals(hub: Hub, project: str, name: str) -> list[dict[str, Any]]:
    """The newest eval runs of prompt ``name``: version, suite, provider, verdict, pass rate
    with its interval (``low``, ``high``), cases and errors."""
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    where = f"tags.kind = 'prompt-eval' and tags.prompt = '{quoted}'"
    out = []
    for run in hub.index(project).search(where, "-started", EVALS_SHOWN):
        metric = {k: m.last for k, m in run.metrics.items()}
        out.append(
            {
                "run": run.id,
                "started": run.started,
                "version": run.tags.get("prompt.version", ""),
                "suite": run.tags.get("suite", ""),
                "provider": run.tags.get("provider", ""),
                "verdict": run.tags.get("verdict", "none"),
                "pass_rate": metric.get("pass_rate"),
                "low": metric.get("pass_rate_low"),
                "high": metric.get("pass_rate_high"),
                "cases": metric.get("cases"),
                "errors": metric.get("errors"),
            }
        )
    return out


def paired(hub: Hub, project: str, name: str, a: str, b: str) -> tuple[Comparison, dict[str, str]]:
    """Eval run ``b`` against eval run ``a`` of prompt ``name`` on one suite, case by case; with
    what each ran (prompt versions, suite)."""
    from tether.prompts.stats import compare
    from tether.team.views import run_record

    if a == b:
        raise UsageError("pick two different evaluations: a run against itself tells nothing")
    records = [run_record(hub, project, run) for run in (a, b)]
    for run, record in zip((a, b), records, strict=True):
        tags = record.get("tags") or {}
        if tags.get("kind") != "prompt-eval" or tags.get("prompt") != name:
            raise UsageError(f"run {run} is not an evaluation of prompt {name}")
    params = [r.get("params") or {} for r in records]
    if params[0].get("suite.content_id") != params[1].get("suite.content_id"):
        raise UsageError(
            "these two evaluations ran different suites (or different versions of one): a "
            "paired comparison needs both prompt versions run on the same cases"
        )
    outcomes = [_outcomes(hub, project, run) for run in (a, b)]
    done = compare(outcomes[0], outcomes[1])
    meta = {"a": params[0].get("prompt", a), "b": params[1].get("prompt", b)}
    meta["suite"] = (records[0].get("tags") or {}).get("suite", "")
    return done, meta


def _outcomes(hub: Hub, project: str, run: str) -> list[Any]:
    from tether.errors import FormatError
    from tether.prompts.evaluate import load_results
    from tether.team.views import artifact

    try:
        _found, data = artifact(hub, project, run, "results.jsonl")
    except MissingOnServerError:
        raise MissingOnServerError(
            f"run {run} has no results.jsonl on the server: `tether sync` from the clone that "
            "ran it"
        ) from None
    try:
        return [r.outcome() for r in load_results(data)]
    except (ValueError, TypeError, KeyError) as exc:
        raise FormatError(f"run {run}'s results.jsonl is not an evaluation's rows: {exc}") from None
