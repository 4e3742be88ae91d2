"""An OpenAI Evals FuzzyMatch eval, imported and run: the run's pass rate and mean score on its
grader are the accuracy and f1_score FuzzyMatch.run() reports for the same answers."""

import io
import shutil

import pytest
from django.core.management import call_command

from datasets_app import services as datasets
from datasets_app.models import Case
from grading_app.models import Run
from tests.datasets.corpus_helpers import CORPUS
from tests.factories import make_dataset, make_user
from tests.grading.test_run_eval import jobs_run_when_start_run_commits, run_eval, write_jsonl  # noqa: F401

pytestmark = pytest.mark.django_db

# The four answers of test_corpus_openai's FuzzyMatch case: a correct answer inside a sentence,
# an ideal's own words, a shorter answer the ideal contains, and a wrong one sharing a word.
ANSWERS = {
    "treaty": "It was signed in 1798.",
    "capital": "paris",
    "plan": "Pro plan",
    "refund": "Fourteen days.",
}


def test_a_run_reports_fuzzy_matchs_accuracy_as_pass_rate_and_its_f1_as_mean_score(tmp_path):
    importer = make_user("importer", roles=("Dataset owner", "Rubric owner"))
    reviewer = make_user("reviewer2", roles=("Reviewer",))
    dataset = make_dataset("fuzzy", owner=importer)
    registry = tmp_path / "registry"
    shutil.copytree(CORPUS / "openai_evals" / "registry", registry)
    call_command(
        "import_cases",
        "fuzzy",
        str(registry / "evals" / "support.yaml"),
        "--format",
        "openai-evals",
        "--eval",
        "support-fuzzy",
        "--as",
        "importer",
        stdout=io.StringIO(),
    )
    for case in Case.objects.filter(dataset=dataset):
        datasets.audit_case(datasets.submit_case(case, actor=importer), actor=reviewer)
    outputs = write_jsonl(tmp_path / "outputs.jsonl", [{"case": k, "output": v} for k, v in ANSWERS.items()])

    printed = run_eval("fuzzy", "--outputs", str(outputs), "--candidate", "v1")

    graded = Run.objects.get().summary["graders"]["fuzzy-match"]
    assert (graded["n"], graded["passed"], graded["pass_rate"]) == (4, 3, 0.75)  # accuracy
    assert graded["mean_score"] == pytest.approx((1 / 3 + 1 + 2 / 3 + 1 / 2) / 4)  # f1_score
    assert "fuzzy-match: pass rate 75.0% (n=4, errors=0)" in printed
