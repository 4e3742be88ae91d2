"""Roles for the governance changes: approvers issue their own personal tokens, owners and
reviewers read the audit log, gate owners see the pinned cases they may be asked about."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ADDED = {
    "Release approver": [
        "gates_app.add_deploytoken", "gates_app.view_deploytoken",
        "audit_app.view_auditevent",
    ],
    "Reviewer": ["audit_app.view_auditevent"],
    "Dataset owner": ["audit_app.view_auditevent", "datasets_app.view_pinnedcaserequest"],
    "Rubric owner": ["audit_app.view_auditevent"],
    "Gate owner": [
        "audit_app.view_auditevent", "datasets_app.view_case", "datasets_app.view_pinnedcaserequest",
    ],
}


def _permission(apps, perm):
    app_label, codename = perm.split(".")
    return apps.get_model("auth", "Permission").objects.get(
        content_type__app_label=app_label, codename=codename
    )


def extend_roles(apps, schema_editor):
    for label in ("audit_app", "datasets_app", "gates_app"):
        app_config = apps.get_app_config(label)
        app_config.models_module = True  # create_permissions skips apps without models
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    for name, perms in ADDED.items():
        Group.objects.get(name=name).permissions.add(*(_permission(apps, p) for p in perms))


def shrink_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name, perms in ADDED.items():
        Group.objects.get(name=name).permissions.remove(*(_permission(apps, p) for p in perms))


class Migration(migrations.Migration):
    dependencies = [
        ("audit_app", "0001_initial"),
        ("gates_app", "0006_governance_owners_approvals_tokens"),
    ]

    operations = [migrations.RunPython(extend_roles, shrink_roles)]
