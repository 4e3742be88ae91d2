"""The Owner field of admin forms: a plain list of the people who may own the object.

Django's autocomplete (and raw-id lookup) of a user asks for permission to view users, which
no role has: it answered 403 to all but superusers, so nobody in the Rubric owner or Gate owner
role could create a rubric or a gate. This list offers instead the active users whose role may
change such objects (a superuser: every active user), and whoever owns the object now; a new
object's owner is, by default, the person creating it. Who may change the owner is still the
object's service's rule; the list only says who could hold it.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Q, QuerySet
from django.http import HttpRequest


def eligible_owners(perm: str, viewer: Any, *, also: int | None = None) -> QuerySet:
    """Active users holding ``perm`` (through a role or directly) or superusers; every active user
    for a superuser ``viewer``; and the user ``also`` (the current owner) whatever they are."""
    users = get_user_model().objects
    if viewer.is_superuser:
        eligible = Q(is_active=True)
    else:
        app_label, codename = perm.split(".")
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        eligible = Q(is_active=True) & (
            Q(is_superuser=True) | Q(groups__permissions__in=permission) | Q(user_permissions__in=permission)
        )
    # A subquery keeps the list's own query free of joins (no duplicates, no DISTINCT).
    chosen = Q(pk__in=users.filter(eligible).values("pk"))
    if also is not None:
        chosen |= Q(pk=also)
    return users.filter(chosen).order_by("username")


class OwnerFieldAdmin:
    """ModelAdmin mixin: the ``owner`` foreign key as a plain list of eligible owners, the
    requesting user first chosen on the add page. ``owner_permission`` names whose role may own."""

    owner_permission: str = ""

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        # The field is built in formfield_for_foreignkey, also for a form a subclass of the
        # admin derives from this one (GateAdmin's): it needs the object's current owner there.
        request._evalgate_current_owner = getattr(obj, "owner_id", None)
        return super().get_form(request, obj, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "owner" and self.owner_permission:
            also = getattr(request, "_evalgate_current_owner", None)
            kwargs["queryset"] = eligible_owners(self.owner_permission, request.user, also=also)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}
