"""Results and grades drop indexes that others already serve, so each of a run's thousands of
rows writes fewer: a result's run (the unique (run, case, trial) index leads with it), a grade's
result (the unique (case_result, grader) index) and, for the grades of code graders that have no
rubric version, that column (now a partial index of the judges' grades only).

Only the indexes change in the database: Django's own way to alter ``db_index`` of a foreign
key drops and re-adds the constraint, which re-checks every row of both tables under lock."""

import django.db.models.deletion
from django.db import migrations, models

DROPPED = {
    "grading_app_caseresult_run_id_2ca874e8": ("grading_app_caseresult", "run_id"),
    "grading_app_grade_case_result_id_ede60d10": ("grading_app_grade", "case_result_id"),
    "grading_app_grade_rubric_version_id_2c63e90f": ("grading_app_grade", "rubric_version_id"),
}


class Migration(migrations.Migration):
    dependencies = [
        ("grading_app", "0011_run_persona_versions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="caseresult",
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="results",
                        to="grading_app.run",
                    ),
                ),
                migrations.AlterField(
                    model_name="grade",
                    name="case_result",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="grades",
                        to="grading_app.caseresult",
                    ),
                ),
                migrations.AlterField(
                    model_name="grade",
                    name="rubric_version",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="grades",
                        to="grading_app.rubricversion",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "{table}" ("{column}")',
                )
                for name, (table, column) in DROPPED.items()
            ],
        ),
        migrations.AddIndex(
            model_name="grade",
            index=models.Index(
                condition=models.Q(("rubric_version__isnull", False)),
                fields=["rubric_version"],
                name="grade_rubric_version_judged",
            ),
        ),
    ]
