"""Outputs in pages: a check whose outputs are too large for one request receives the rest of
them here, page by page, and its run starts with the last one.

``evalgate check`` pages a submission the server refused as too large (413). Each page is
validated when it arrives (shape, case keys of the dataset, no case twice across pages) and
stored straight into the waiting run; a page sent again with the same outputs changes nothing,
with other outputs it is a 422. Only whoever requested the check adds its pages. A check whose
pages stop arriving is inconclusive after EVALGATE_UPLOAD_TTL_S (the reaper cancels its run).
"""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from gates_app.models import Check, CheckUploadPage, DeployToken
from gates_app.services import fingerprint
from grading_app.choices import RunStatus
from grading_app.outputs import parse_outputs
from grading_app.services import add_outputs, dispatch_run


class PageConflict(Exception):
    """This page number was already received with other outputs (HTTP 422)."""


def upload_state(check: Check) -> dict[str, Any] | None:
    """What the API says of a paged check's outputs (None for a check that took them whole)."""
    if not check.pages_expected:
        return None
    received = check.pages.count()
    return {"pages": check.pages_expected, "received": received, "complete": received >= check.pages_expected}


def _same_requester(check: Check, token: DeployToken | None, actor: AbstractBaseUser | None) -> bool:
    if check.requested_by_token_id is not None:
        return token is not None and token.pk == check.requested_by_token_id
    return actor is not None and actor.pk == check.requested_by_user_id


@transaction.atomic
def add_outputs_page(
    check: Check,
    *,
    number: int,
    outputs: Any,
    token: DeployToken | None = None,
    actor: AbstractBaseUser | None = None,
) -> Check:
    """Receive page ``number`` of the check's outputs; the last one starts its run."""
    check = Check.objects.select_for_update(of=("self",)).select_related("run").get(pk=check.pk)
    if not check.pages_expected:
        raise ValidationError("This check's outputs came with its request: it takes no pages.")
    if not _same_requester(check, token, actor):
        raise PermissionDenied("Only whoever requested the check sends the pages of its outputs.")
    if not 1 <= number <= check.pages_expected:
        raise ValidationError({"page": f"Pages of this check are numbered 1 to {check.pages_expected}."})
    digest = fingerprint(outputs)
    earlier = CheckUploadPage.objects.filter(gate_check=check, number=number).first()
    if earlier is not None:
        if earlier.fingerprint != digest:
            raise PageConflict(number)
        return check  # a retry of a page that arrived: nothing changes
    if check.run.status != RunStatus.WAITING:
        raise ValidationError(f"Check {check.pk} no longer takes outputs: its run is {check.run.status}.")
    items = parse_outputs(outputs)
    add_outputs(check.run, items)
    CheckUploadPage.objects.create(gate_check=check, number=number, fingerprint=digest, outputs=len(items))
    if CheckUploadPage.objects.filter(gate_check=check).count() == check.pages_expected:
        dispatch_run(check.run)
    return check
