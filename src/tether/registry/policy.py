"""Promotion policies, from ``tether.toml``::

    [registry.policy.production]
    approvals = 2                     # distinct approvers needed
    self_approval = false             # the requester's own approval never counts
    approvers = ["group:ml-leads", "ci@example.com"]   # identities or groups ([groups] table)
    require = ["clean_tree", "reproduced", "signed", "metric:accuracy>=0.8"]

A stage without a policy needs one approval from any trusted key with the ``approver`` role.
Release gates (``require``): ``clean_tree`` (the run's code had no uncommitted change),
``reproduced`` (a ``tether reproduce`` of the run said REPRODUCED), ``signed`` (the version has a
verified signature), ``metric:KEY>=X`` (or ``>``, ``<=``, ``<``, ``==``) on the run's last value.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.errors import ConfigError
from tether.hashing import hash_bytes

STAGES = ("staging", "production", "archived")
GATES = ("clean_tree", "reproduced", "signed")
_METRIC = re.compile(r"^metric:([\w.\-/]+)\s*(>=|<=|==|>|<)\s*(-?[0-9.eE+-]+)$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt,
}  # fmt: skip


@dataclass(frozen=True)
class Policy:
    stage: str
    approvals: int = 1
    self_approval: bool = False
    approvers: tuple[str, ...] = ()  # empty: any trusted key with the approver role
    require: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policies:
    stages: dict[str, Policy] = field(default_factory=dict)

    def for_stage(self, stage: str) -> Policy:
        return self.stages.get(stage) or Policy(stage)

    def to_dict(self) -> dict[str, Any]:
        return {
            s: {
                "approvals": p.approvals,
                "self_approval": p.self_approval,
                "approvers": list(p.approvers),
                "require": list(p.require),
            }
            for s, p in sorted(self.stages.items())
        }

    @property
    def id(self) -> str:
        """What each decision records as the policy in force."""
        return hash_bytes(json.dumps(self.to_dict(), sort_keys=True).encode())


def load_policies(config: Mapping[str, Any]) -> Policies:
    raw = (config.get("registry") or {}).get("policy") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError("[registry.policy] must hold one table per stage")
    stages = {}
    for stage, spec in raw.items():
        if stage not in STAGES:
            raise ConfigError(
                f"[registry.policy.{stage}]: stages are {', '.join(STAGES)} "
                "(aliases need no policy)"
            )
        if not isinstance(spec, Mapping):
            raise ConfigError(f"[registry.policy.{stage}] must be a table")
        unknown = sorted(set(spec) - {"approvals", "self_approval", "approvers", "require"})
        if unknown:
            raise ConfigError(f"[registry.policy.{stage}]: unknown key {', '.join(unknown)}")
        require = tuple(str(r) for r in spec.get("require") or ())
        for rule in require:
            if rule not in GATES and not _METRIC.match(rule):
                raise ConfigError(
                    f"[registry.policy.{stage}]: unknown gate {rule!r} (use {', '.join(GATES)} "
                    "or metric:KEY>=VALUE)"
                )
        approvals = int(spec.get("approvals", 1))
        if approvals < 0:
            raise ConfigError(f"[registry.policy.{stage}]: approvals must be 0 or more")
        stages[stage] = Policy(
            stage,
            approvals,
            bool(spec.get("self_approval", False)),
            tuple(str(a) for a in spec.get("approvers") or ()),
            require,
        )
    return Policies(stages)


@dataclass(frozen=True)
class Facts:
    """What the gates look at for one version."""

    dirty: bool
    reproduced: bool
    signed: bool
    metrics: dict[str, float]


def failed_gates(policy: Policy, facts: Facts) -> list[str]:
    """Each gate of ``policy`` that ``facts`` do not meet, as a sentence naming the rule."""
    out = []
    for rule in policy.require:
        if rule == "clean_tree" and facts.dirty:
            out.append(
                "clean_tree: the run was made with uncommitted changes (commit, then train again)"
            )
        elif rule == "reproduced" and not facts.reproduced:
            out.append(
                "reproduced: no `tether reproduce` of its run said REPRODUCED (run `tether "
                "reproduce RUN` first)"
            )
        elif rule == "signed" and not facts.signed:
            out.append(
                "signed: the version has no signature by a trusted key (`tether model sign "
                "NAME@vN` with an approver's key)"
            )
        elif (m := _METRIC.match(rule)) is not None:
            key, op, bound = m[1], m[2], float(m[3])
            value = facts.metrics.get(key)
            if value is None:
                out.append(f"{rule}: the run has no metric {key}")
            elif not _OPS[op](value, bound):
                out.append(f"{rule}: the run's {key} is {value:g}")
    return out
