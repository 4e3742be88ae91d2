"""Issue 10, finding 8: a config's cases_file resolves only inside the config file's directory."""

from io import StringIO

import pytest
import yaml
from django.core.management import CommandError, call_command

from datasets_app.models import Case, Dataset
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def config(tmp_path, cases_file: str):
    data = {
        "failure_classes": [{"slug": "factual", "name": "Factual"}],
        "datasets": [{"slug": "support", "name": "Support", "cases_file": cases_file}],
    }
    folder = tmp_path / "repo" / "evals"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "evals.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("cases_file", ["../../../../../../etc/passwd", "/etc/passwd", "../outside.jsonl"])
def test_a_cases_file_outside_the_configs_directory_is_refused(tmp_path, cases_file):
    make_user("bob", roles=("Dataset owner",))
    (tmp_path / "repo" / "outside.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "repo" / "outside.jsonl").write_text(
        '{"key": "k", "failure_class": "factual", "input": {"q": 1}}\n'
    )
    path = config(tmp_path, cases_file)

    with pytest.raises(CommandError) as failed:
        call_command("apply_config", str(path), "--as", "bob", stdout=StringIO())

    assert f"datasets[0].cases_file: {cases_file} is outside the config file's directory" in str(failed.value)
    assert "root:" not in str(failed.value)  # nothing of the file is echoed
    assert not Dataset.objects.exists() and not Case.objects.exists()


def test_a_symlink_pointing_out_of_the_directory_is_refused(tmp_path):
    make_user("bob", roles=("Dataset owner",))
    path = config(tmp_path, "cases.jsonl")
    (path.parent / "cases.jsonl").symlink_to("/etc/passwd")

    with pytest.raises(CommandError, match="is outside the config file's directory"):
        call_command("apply_config", str(path), "--as", "bob", stdout=StringIO())


def test_a_cases_file_in_a_subfolder_is_read(tmp_path):
    make_user("bob", roles=("Dataset owner",))
    path = config(tmp_path, "cases/support.jsonl")
    (path.parent / "cases").mkdir()
    (path.parent / "cases" / "support.jsonl").write_text(
        '{"key": "k", "failure_class": "factual", "input": {"q": "hi"}}\n'
    )

    call_command("apply_config", str(path), "--as", "bob", stdout=StringIO())

    assert Case.objects.get().key == "k"
