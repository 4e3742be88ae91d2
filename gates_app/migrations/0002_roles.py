"""Roles as Django groups with the permissions each needs (DESIGN.md: who does what).

Permissions are normally created after migrations run, so this migration creates them
first for the apps it names. Later migrations extend roles as models arrive.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "Domain expert": [
        "datasets_app.view_dataset", "datasets_app.view_failureclass",
        "datasets_app.add_case", "datasets_app.change_case", "datasets_app.view_case",
        "datasets_app.submit_case", "datasets_app.add_incident", "datasets_app.view_incident",
    ],
    "Reviewer": [
        "datasets_app.view_dataset", "datasets_app.view_failureclass",
        "datasets_app.change_case", "datasets_app.view_case", "datasets_app.audit_case",
        "datasets_app.view_incident",
        "grading_app.view_run", "grading_app.view_caseresult", "grading_app.view_grade",
    ],
    "Dataset owner": [
        "datasets_app.add_dataset", "datasets_app.change_dataset", "datasets_app.view_dataset",
        "datasets_app.add_failureclass", "datasets_app.change_failureclass",
        "datasets_app.view_failureclass",
        "datasets_app.add_case", "datasets_app.change_case", "datasets_app.view_case",
        "datasets_app.submit_case", "datasets_app.audit_case", "datasets_app.retire_case",
        "datasets_app.import_cases",
        "datasets_app.add_incident", "datasets_app.change_incident", "datasets_app.view_incident",
        "datasets_app.triage_incident",
    ],
    "Rubric owner": [
        "datasets_app.view_failureclass",
        "grading_app.add_grader", "grading_app.change_grader", "grading_app.view_grader",
        "grading_app.view_run", "grading_app.view_caseresult", "grading_app.view_grade",
    ],
    "Gate owner": [
        "datasets_app.view_dataset",
        "grading_app.view_grader", "grading_app.view_run", "grading_app.view_caseresult",
        "grading_app.view_grade",
        "gates_app.add_gate", "gates_app.change_gate", "gates_app.view_gate",
        "gates_app.add_gaterule", "gates_app.change_gaterule", "gates_app.view_gaterule",
        "gates_app.delete_gaterule",
        "gates_app.view_check",
        "gates_app.add_deploytoken", "gates_app.change_deploytoken", "gates_app.view_deploytoken",
    ],
    "Release approver": [
        "gates_app.view_gate", "gates_app.view_gaterule", "gates_app.view_check",
        "grading_app.view_run", "grading_app.view_caseresult", "grading_app.view_grade",
    ],
}


def create_roles(apps, schema_editor):
    for label in ("datasets_app", "grading_app", "gates_app"):
        app_config = apps.get_app_config(label)
        app_config.models_module = True  # create_permissions skips apps without models
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("datasets_app", "0002_incidents_and_case_permissions"),
        ("grading_app", "0001_initial"),
        ("gates_app", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
