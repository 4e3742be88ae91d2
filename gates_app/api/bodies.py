"""The cache of decided checks' API bodies.

A decided check is read far more often than it changes (a deploy script polls, then every
later pipeline asks again), and building its body costs queries for its gate, run, decisions
and missing cases. Once decided, its body changes only with a decision (approvals, overrides,
``release_allowed``) or a setting of its gate that the body shows; the cache key is a digest of
exactly those, read in the one query that also checks the requester may see the check. A key
therefore never serves a stale body: the next request after any change looks up a new key.

The cache is optional: when it cannot be reached, bodies are built as if nothing were cached.
"""

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max, QuerySet
from django.urls import reverse
from rest_framework.request import Request

from gates_app.choices import CheckStatus
from gates_app.models import Check

logger = logging.getLogger(__name__)
KEPT_S = 24 * 3600
# What a decided check's body can still change with (besides its id).
FINGERPRINT = (
    "status", "verdict", "release_allowed", "decided_at", "decisions_n", "decisions_last",
    "gate__slug", "gate__warnings_need_approval", "gate__required_approvals",
)  # fmt: skip
ADMIN_URL = "admin_url"  # the one field that depends on the request (its host)
VERSION = 1  # bump when the body's shape changes, so no body of the old shape is served


@dataclass(frozen=True)
class State:
    pk: int
    key: str | None  # None: not decided, nothing to cache


def decided_state(visible: QuerySet[Check], pk: Any) -> State | None:
    """The check's cache key if it is decided; None if the requester cannot see it."""
    row = (
        visible.filter(pk=pk)
        .order_by()
        .values("pk", *(f for f in FINGERPRINT if not f.startswith("decisions_")))
        .annotate(decisions_n=Count("decisions"), decisions_last=Max("decisions__id"))
        .first()
    )
    if row is None:
        return None
    if row["status"] != CheckStatus.DONE or row["decided_at"] is None:
        return State(row["pk"], None)
    digest = hashlib.blake2b(repr([row[f] for f in FINGERPRINT]).encode(), digest_size=16).hexdigest()
    return State(row["pk"], f"evalgate:check-body:v{VERSION}:{row['pk']}:{digest}")


def cached(key: str) -> dict[str, Any] | None:
    try:
        return cache.get(key)
    except Exception as exc:  # Redis down or refusing: build the body instead
        logger.warning("check bodies built uncached: the cache is unreachable (%s)", exc)
        return None


def keep(key: str, body: dict[str, Any]) -> None:
    try:
        cache.set(key, dict(body), KEPT_S)
    except Exception as exc:
        logger.warning("check body not cached: the cache is unreachable (%s)", exc)


def for_request(body: dict[str, Any], request: Request, pk: int) -> dict[str, Any]:
    """The cached body with this request's absolute admin URL (key order kept)."""
    body = dict(body)
    body[ADMIN_URL] = request.build_absolute_uri(reverse("admin:gates_app_check_change", args=[pk]))
    return body
