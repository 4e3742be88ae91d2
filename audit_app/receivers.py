"""Guards and records that hold whatever path a change takes (admin, shell, commands).

- A user who acted (anything of ours points at them: an audit event, a history row, a case,
  a token, an admin log entry) is deactivated, never deleted: deleting would blank or cascade
  the record of what they did.
- Role changes (group membership, a role's permissions, the staff / superuser / active flags)
  are governed acts: each writes an audit event in the same transaction.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import ProtectedError
from django.db.models.signals import m2m_changed, post_save, pre_delete, pre_save
from django.dispatch import receiver

from audit_app.choices import Action
from audit_app.context import current_user
from audit_app.services import record_event

User = get_user_model()
# Relations from these apps do not make a user someone who acted.
NOT_ACTS = {"auth", "contenttypes", "sessions"}
FLAGS = ("is_active", "is_staff", "is_superuser")


def acted(user: Any) -> list[str]:
    """Names of the models that record something this user did (one EXISTS query each)."""
    found = []
    # Hidden relations too: history rows point at their user with related_name="+".
    relations = [f for f in user._meta.get_fields(include_hidden=True) if f.auto_created and not f.concrete]
    for relation in relations:
        model = relation.related_model
        if model._meta.app_label in NOT_ACTS or relation.many_to_many:
            continue
        if model._default_manager.filter(**{relation.field.name: user}).exists():
            found.append(str(model._meta.verbose_name_plural))
    return found


@receiver(pre_delete, sender=User, dispatch_uid="audit_app.refuse_deleting_users_who_acted")
def refuse_deleting_users_who_acted(sender: Any, instance: Any, **kwargs: Any) -> None:
    if found := acted(instance):
        raise ProtectedError(
            f"User {instance.get_username()} acted ({', '.join(sorted(found)[:5])}): "
            "deactivate the account instead of deleting it, so the record of what they did stays whole.",
            set(),
        )


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="audit_app.record_role_membership")
def record_role_membership(
    sender: Any, instance: Any, action: str, pk_set: Any, reverse: bool, **kwargs: Any
):
    if action == "pre_clear":
        # clear() sends no pk_set afterwards: remember who was in, to record it.
        instance._audit_cleared = (
            list(instance.user_set.values_list("pk", flat=True))
            if reverse
            else list(instance.groups.values_list("pk", flat=True))
        )
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    pks = sorted(pk_set or getattr(instance, "_audit_cleared", []))
    if not pks:
        return
    verb = "added" if action == "post_add" else "removed"
    if reverse:  # group.user_set.add(...): one event per user, each about that user
        for user in User.objects.filter(pk__in=pks):
            _record_membership(user, [instance.name], verb)
    else:
        _record_membership(
            instance, list(Group.objects.filter(pk__in=pks).values_list("name", flat=True)), verb
        )


def _record_membership(user: Any, groups: list[str], verb: str) -> None:
    record_event(
        Action.ROLE_CHANGED,
        actor=current_user(),
        obj=user,
        details={"user": user.get_username(), verb: sorted(groups)},
    )


@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="audit_app.record_role_permissions")
def record_role_permissions(
    sender: Any, instance: Any, action: str, pk_set: Any, reverse: bool, **kwargs: Any
):
    if reverse or action not in ("post_add", "post_remove", "post_clear"):
        return
    from django.contrib.auth.models import Permission

    names = sorted(
        f"{app}.{code}"
        for app, code in Permission.objects.filter(pk__in=pk_set or []).values_list(
            "content_type__app_label", "codename"
        )
    )
    verb = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}[action]
    record_event(
        Action.ROLE_PERMISSIONS_CHANGED,
        actor=current_user(),
        obj=instance,
        details={"role": instance.name, verb: names},
    )


@receiver(pre_save, sender=User, dispatch_uid="audit_app.remember_user_flags")
def remember_user_flags(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if update_fields is not None and not set(update_fields) & set(FLAGS):
        instance._audit_flags = None  # e.g. a login stamping last_login: nothing to compare
        return
    if instance.pk is None:
        instance._audit_flags = None
        return
    instance._audit_flags = User.objects.filter(pk=instance.pk).values(*FLAGS).first()


@receiver(post_save, sender=User, dispatch_uid="audit_app.record_user_flags")
def record_user_flags(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    before = getattr(instance, "_audit_flags", None)
    if raw or (before is None and not created):
        return
    after = {flag: getattr(instance, flag) for flag in FLAGS}
    if created:
        # A new account matters only when it starts with powers.
        changed = {flag: [None, value] for flag, value in after.items() if flag != "is_active" and value}
    else:
        changed = {
            flag: [before[flag], after[flag]] for flag in FLAGS if before and before[flag] != after[flag]
        }
    if changed:
        record_event(
            Action.USER_FLAGS_CHANGED,
            actor=current_user(),
            obj=instance,
            details={"user": instance.get_username(), "changed": changed},
        )
