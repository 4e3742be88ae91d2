"""Plain make_* functions with obvious defaults, built through the services where rules apply."""

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group

from datasets_app import services as datasets
from datasets_app.models import Case, Dataset, FailureClass
from gates_app.models import Gate
from gates_app.services import save_gate
from gates_app.tokens import create_token
from grading_app import services as grading
from grading_app.models import Endpoint, Grader, Rubric, RubricVersion
from grading_app.services import save_grader

_seq = itertools.count(1)


def make_user(username: str = "", *, roles: tuple[str, ...] = (), **fields: Any) -> AbstractUser:
    """A user in the given role groups (created by the roles migration)."""
    username = username or f"user{next(_seq)}"
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, **fields)
    if roles:
        user.groups.set(Group.objects.filter(name__in=roles))
        assert user.groups.count() == len(roles), f"unknown role in {roles}"
    return user


def make_failure_class(slug: str = "factual") -> FailureClass:
    return datasets.save_failure_class(slug=slug, name=slug.title(), description=f"{slug} failures")


def make_dataset(slug: str = "", owner: AbstractUser | None = None) -> Dataset:
    slug = slug or f"ds{next(_seq)}"
    return datasets.save_dataset(slug=slug, name=slug, owner=owner)


def make_case(
    dataset: Dataset,
    key: str = "",
    *,
    failure_class: FailureClass | None = None,
    tier: str = "trusted",
    expected: dict[str, Any] | None = None,
    active: bool = True,
    contributor: AbstractUser | None = None,
    auditor: AbstractUser | None = None,
    **fields: Any,
) -> Case:
    """A case added by ``contributor`` and, when ``active``, audited by someone else."""
    contributor = contributor or make_user(roles=("Domain expert",))
    case = datasets.add_case(
        dataset=dataset,
        key=key or f"case-{next(_seq)}",
        failure_class=failure_class or make_failure_class(),
        input={"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]},
        expected=expected if expected is not None else {"answer": "No"},
        actor=contributor,
        **fields,
    )
    if active:
        case = datasets.audit_case(case, actor=auditor or make_user(roles=("Reviewer",)), tier=tier)
    return case


def make_grader(slug: str = "answer-exact", kind: str = "exact_match", **fields: Any) -> Grader:
    return save_grader(slug=slug, kind=kind, **fields)


def make_gate(
    dataset: Dataset,
    slug: str = "",
    *,
    owner: AbstractUser | None = None,
    rules: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> Gate:
    return save_gate(
        slug=slug or f"gate{next(_seq)}",
        name="Release gate",
        owner=owner or make_user(),
        dataset=dataset,
        rules=rules or [],
        **fields,
    )


def make_token(gates: list[Gate], scopes: list[str] | None = None, **fields: Any) -> str:
    """A deploy token for ``gates``, issued by the first gate's owner; returns the secret."""
    fields.setdefault("actor", gates[0].owner if gates else None)
    _, secret = create_token(name=f"token{next(_seq)}", gates=gates, scopes=scopes, **fields)
    return secret


def make_scenario(n_trusted: int = 4, n_monitoring: int = 2, **gate_fields: Any) -> dict[str, Any]:
    """A dataset of refund questions, an exact-match grader and a gate with a block and a warn rule.

    Every case expects the answer "No"; ``good_outputs`` answers all of them right.
    """
    owner = make_user()
    failure_class = make_failure_class("factual")
    dataset = make_dataset(owner=owner)
    contributor, auditor = make_user(roles=("Domain expert",)), make_user(roles=("Reviewer",))
    cases = [
        make_case(
            dataset,
            f"t{i}",
            failure_class=failure_class,
            tier="trusted",
            contributor=contributor,
            auditor=auditor,
        )
        for i in range(n_trusted)
    ] + [
        make_case(
            dataset,
            f"m{i}",
            failure_class=failure_class,
            tier="monitoring",
            contributor=contributor,
            auditor=auditor,
        )
        for i in range(n_monitoring)
    ]
    grader = make_grader()
    rules = gate_fields.pop("rules", None) or [
        {
            "name": "trusted accuracy",
            "metric": "pass_rate",
            "grader": grader,
            "scope": {"tier": "trusted"},
            "threshold": 0.9,
            "severity": "block",
        },
        {"name": "latency budget", "metric": "latency_p95_ms", "threshold": 2000, "severity": "warn"},
    ]
    gate = make_gate(dataset, owner=owner, rules=rules, **gate_fields)
    return {"owner": owner, "dataset": dataset, "cases": cases, "grader": grader, "gate": gate}


def outputs_for(cases: list[Case], answer: str = "No", latency_ms: float = 800) -> list[dict[str, Any]]:
    return [{"case": c.key, "output": answer, "metrics": {"latency_ms": latency_ms}} for c in cases]


def make_endpoint(base_url: str, name: str = "", **fields: Any) -> Endpoint:
    fields.setdefault("timeout_s", 5)
    fields.setdefault("max_retries", 2)
    return grading.save_endpoint(name=name or f"ep{next(_seq)}", base_url=base_url, **fields)


def make_rubric_version(
    endpoint: Endpoint,
    *,
    approved: bool = True,
    owner: AbstractUser | None = None,
    model: str = "judge-model",
    criteria: str = "The answer is correct, polite and grounded in policy.",
    **fields: Any,
) -> RubricVersion:
    """A rubric version written by one person and, when ``approved``, signed off by the owner."""
    owner = owner or make_user(roles=("Rubric owner",))
    rubric = Rubric.objects.filter(owner=owner).first() or grading.save_rubric(
        slug=f"rubric{next(_seq)}", name="Helpfulness", owner=owner
    )
    author = make_user(roles=("Rubric owner",))
    version = grading.create_rubric_version(
        rubric, actor=author, criteria=criteria, endpoint=endpoint, model=model, **fields
    )
    if approved:
        version = grading.submit_rubric_version(version, actor=author)
        version = grading.approve_rubric_version(version, actor=owner)
    return version


def make_source(
    slug: str = "", *, gates: tuple[Gate, ...] = (), owner: AbstractUser | None = None, **fields: Any
):
    """A production trace source, linked to ``gates`` (whose deploy tokens may then send to it)."""
    from monitoring_app.models import Source

    source = Source.objects.create(
        slug=slug or f"source{next(_seq)}",
        name="Support bot (production)",
        owner=owner or make_user(),
        **fields,
    )
    for gate in gates:
        gate.sources.add(source)
    return source


def make_monitor(source, *, graders=(), owner: AbstractUser | None = None, actor=None, **fields: Any):
    """A monitor on ``source`` grading with ``graders``, saved through the service by ``actor``
    (default: its owner), as every path does."""
    from monitoring_app.models import Monitor
    from monitoring_app.services import save_monitor

    owner = owner or make_user(roles=("Gate owner",))
    monitor = Monitor(
        slug=fields.pop("slug", f"monitor{next(_seq)}"), name="Refunds in production", source=source, **fields
    )
    monitor.owner = owner
    return save_monitor(monitor, actor=actor or owner, graders=list(graders))
