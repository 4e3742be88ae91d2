"""README's role matrix ("Who may do what") says what the role groups the migrations create allow.

Each act of the matrix stands for one permission; a cell says "yes" exactly when the role's
group holds it. The per-object rules of the last column are tested where they are enforced
(tests/*/test_trust_*.py).
"""

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

README = Path(__file__).resolve().parents[1] / "README.md"
ACT_PERMISSIONS = {
    "add draft cases": "datasets_app.add_case",
    "edit cases": "datasets_app.change_case",
    "submit cases for review": "datasets_app.submit_case",
    "audit cases, promote to trusted": "datasets_app.audit_case",
    "retire, demote, restore; ask to retire or unpin a pinned case": "datasets_app.retire_case",
    "import and export cases": "datasets_app.import_cases",
    "create and change datasets": "datasets_app.change_dataset",
    "report incidents": "datasets_app.add_incident",
    "triage incidents, convert them to pinned cases": "datasets_app.triage_incident",
    "label judged results (review queue)": "grading_app.add_humanlabel",
    "write rubrics and rubric versions": "grading_app.add_rubricversion",
    "add and change graders": "grading_app.add_grader",
    "create gates": "gates_app.add_gate",
    "issue tokens": "gates_app.add_deploytoken",
    "see checks": "gates_app.view_check",
    "read the audit log": "audit_app.view_auditevent",
    "set up trace sources, monitors and alert rules": "monitoring_app.add_monitor",
    "read production traces": "monitoring_app.view_trace",
    "review flagged traces (into incidents or draft cases)": "monitoring_app.change_monitorsample",
}


def matrix() -> tuple[list[str], dict[str, list[str]]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Who may do what", 1)[1].split("\n\n| act | who | never |", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    roles = header[1:-1]
    table = {}
    for line in rows[2:]:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        table[cells[0]] = cells[1 : 1 + len(roles)]
    return roles, table


@pytest.mark.django_db
def test_the_readme_role_matrix_matches_the_role_groups():
    roles, table = matrix()
    assert set(table) == set(ACT_PERMISSIONS), "every act of the matrix is checked, and only those"
    assert set(roles) == set(Group.objects.values_list("name", flat=True))
    wrong = []
    for act, cells in table.items():
        app_label, codename = ACT_PERMISSIONS[act].split(".")
        for role, cell in zip(roles, cells, strict=True):
            holds = (
                Group.objects.get(name=role)
                .permissions.filter(content_type__app_label=app_label, codename=codename)
                .exists()
            )
            if holds != (cell == "yes"):
                wrong.append(
                    f"{act} / {role}: README says {cell!r}, the group {'has' if holds else 'lacks'} it"
                )
    assert wrong == []
