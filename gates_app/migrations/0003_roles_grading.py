"""Extend the roles with the permissions of rubrics, endpoints, targets and human labels."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ADDED = {
    "Rubric owner": [
        "grading_app.add_rubric", "grading_app.change_rubric", "grading_app.view_rubric",
        "grading_app.add_rubricversion", "grading_app.change_rubricversion", "grading_app.view_rubricversion",
        "grading_app.add_endpoint", "grading_app.change_endpoint", "grading_app.view_endpoint",
        "grading_app.view_target", "grading_app.view_humanlabel",
    ],
    "Reviewer": [
        "grading_app.add_humanlabel", "grading_app.view_humanlabel",
        "grading_app.view_rubric", "grading_app.view_rubricversion",
    ],
    "Gate owner": [
        "grading_app.add_target", "grading_app.change_target", "grading_app.view_target",
        "grading_app.view_endpoint",
    ],
}


def extend_roles(apps, schema_editor):
    app_config = apps.get_app_config("grading_app")
    app_config.models_module = True  # create_permissions skips apps without models
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ADDED.items():
        group = Group.objects.get(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def shrink_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ADDED.items():
        group = Group.objects.get(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.remove(*Permission.objects.filter(content_type__app_label=app_label, codename=codename))


class Migration(migrations.Migration):
    dependencies = [
        ("gates_app", "0002_roles"),
        ("grading_app", "0002_rubrics_endpoints_targets_judging"),
    ]

    operations = [migrations.RunPython(extend_roles, shrink_roles)]
