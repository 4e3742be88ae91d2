"""Roles for production monitoring: gate owners set up trace sources, monitors and their alert
rules; dataset owners review the traces monitors flag; domain experts read traces to report
incidents from them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW_ALL = [
    "monitoring_app.view_source", "monitoring_app.view_trace", "monitoring_app.view_monitor",
    "monitoring_app.view_alertrule", "monitoring_app.view_alert", "monitoring_app.view_monitorsample",
    "monitoring_app.view_tracegrade",
]
ADDED = {
    "Gate owner": VIEW_ALL + [
        "monitoring_app.add_source", "monitoring_app.change_source",
        "monitoring_app.add_monitor", "monitoring_app.change_monitor",
        "monitoring_app.add_alertrule", "monitoring_app.change_alertrule", "monitoring_app.delete_alertrule",
        "monitoring_app.change_alert",
    ],
    "Dataset owner": VIEW_ALL + ["monitoring_app.change_monitorsample"],
    "Domain expert": ["monitoring_app.view_trace", "monitoring_app.view_source"],
}


def _permission(apps, perm):
    app_label, codename = perm.split(".")
    return apps.get_model("auth", "Permission").objects.get(
        content_type__app_label=app_label, codename=codename
    )


def extend_roles(apps, schema_editor):
    app_config = apps.get_app_config("monitoring_app")
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
        ("monitoring_app", "0002_monitors"),
        ("gates_app", "0009_gate_sources"),
    ]

    operations = [migrations.RunPython(extend_roles, shrink_roles)]
