"""manage.py run_eval: submitted outputs or a live target, through the job path, summary printed."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from gates_app.management.commands import run_eval as run_eval_command
from grading_app.choices import RunStatus
from grading_app.models import CaseResult, Grade, Run
from grading_app.services import save_target
from tests.factories import make_endpoint, make_scenario, outputs_for
from tests.fake_openai import text

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def jobs_run_when_start_run_commits(monkeypatch, django_capture_on_commit_callbacks):
    """Outside tests start_run's transaction commits before run_eval polls, and the embedded queue
    runs the jobs right then. The test transaction never commits, so run its on_commit callbacks as
    start_run returns: the command then sees the run finished, as it would in production."""
    real_start_run = run_eval_command.start_run

    def start_run_and_commit(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return real_start_run(**kwargs)

    monkeypatch.setattr(run_eval_command, "start_run", start_run_and_commit)


def write_jsonl(path: Path, items: list[dict | str]) -> Path:
    path.write_text("".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items))
    return path


def run_eval(*args: str) -> str:
    out = StringIO()
    # A short timeout: a run that never finishes fails the test instead of hanging it.
    call_command("run_eval", *args, "--timeout", "10", stdout=out)
    return out.getvalue()


def test_outputs_file_is_graded_and_the_summary_printed_with_pass_rates(tmp_path):
    s = make_scenario(n_trusted=4, n_monitoring=2)
    items = outputs_for(s["cases"][:5]) + outputs_for(s["cases"][5:], answer="Yes", latency_ms=1200)
    path = write_jsonl(tmp_path / "outputs.jsonl", items)

    out = run_eval(s["dataset"].slug, "--outputs", str(path), "--candidate", "sha-123")

    run = Run.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert run.candidate == "sha-123"
    lines = out.splitlines()
    assert lines[0] == f"Run {run.pk} of sha-123 on {s['dataset'].slug}: succeeded"
    assert "  cases 6, missing 0, errors 0" in lines
    assert "  answer-exact: pass rate 83.3% (n=6, errors=0)" in lines
    assert "  latency_p50_ms: 800" in lines
    assert CaseResult.objects.filter(run=run).count() == 6
    assert Grade.objects.filter(case_result__run=run, passed=False).count() == 1
    assert "evaluation_cost" not in run.summary  # code graders only: no model call of its own


def test_blank_lines_in_the_outputs_file_are_skipped(tmp_path):
    s = make_scenario(n_trusted=2, n_monitoring=0)
    path = write_jsonl(tmp_path / "outputs.jsonl", ["", *outputs_for(s["cases"]), "   "])

    out = run_eval(s["dataset"].slug, "--outputs", str(path))

    assert "  answer-exact: pass rate 100.0% (n=2, errors=0)" in out


def test_cases_without_an_output_are_counted_missing(tmp_path):
    s = make_scenario(n_trusted=3, n_monitoring=0)
    path = write_jsonl(tmp_path / "outputs.jsonl", outputs_for(s["cases"][:2]))

    out = run_eval(s["dataset"].slug, "--outputs", str(path))

    assert "  cases 3, missing 1, errors 0" in out
    assert "  answer-exact: pass rate 100.0% (n=2, errors=0)" in out


def test_a_line_that_is_not_json_is_an_error_naming_the_line_and_starts_nothing(tmp_path):
    s = make_scenario()
    good = outputs_for(s["cases"])
    path = write_jsonl(tmp_path / "outputs.jsonl", [good[0], good[1], '{"case": "t2", "output": ', good[3]])

    with pytest.raises(CommandError) as failed:
        run_eval(s["dataset"].slug, "--outputs", str(path))

    assert f"{path} line 3: not valid JSON" in str(failed.value)
    assert not Run.objects.exists()


def test_an_output_for_an_unknown_case_key_is_an_error_and_starts_nothing(tmp_path):
    s = make_scenario()
    items = [*outputs_for(s["cases"]), {"case": "no-such-case", "output": "No"}]
    path = write_jsonl(tmp_path / "outputs.jsonl", items)

    with pytest.raises(CommandError, match=r"Unknown case key.*no-such-case"):
        run_eval(s["dataset"].slug, "--outputs", str(path))

    assert not Run.objects.exists()


def test_an_invalid_output_item_is_an_error_naming_its_path(tmp_path):
    s = make_scenario()
    items = outputs_for(s["cases"])
    items[1]["metrics"] = {"latency_ms": "fast"}
    path = write_jsonl(tmp_path / "outputs.jsonl", items)

    with pytest.raises(CommandError, match=r"outputs\[1\]\.metrics\.latency_ms"):
        run_eval(s["dataset"].slug, "--outputs", str(path))

    assert not Run.objects.exists()


def test_an_unreadable_outputs_file_is_an_error(tmp_path):
    s = make_scenario()

    with pytest.raises(CommandError, match="cannot read"):
        run_eval(s["dataset"].slug, "--outputs", str(tmp_path / "missing.jsonl"))


def test_an_unknown_dataset_or_target_is_an_error(tmp_path):
    s = make_scenario()
    path = write_jsonl(tmp_path / "outputs.jsonl", outputs_for(s["cases"]))

    with pytest.raises(CommandError, match="No dataset with slug 'nope'"):
        run_eval("nope", "--outputs", str(path))
    with pytest.raises(CommandError, match="No target with slug 'nope'"):
        run_eval(s["dataset"].slug, "--target", "nope")
    assert not Run.objects.exists()


def test_target_or_outputs_is_required_and_not_both(tmp_path):
    s = make_scenario()
    path = write_jsonl(tmp_path / "outputs.jsonl", outputs_for(s["cases"]))

    with pytest.raises(CommandError, match="one of the arguments --target --outputs is required"):
        run_eval(s["dataset"].slug)
    with pytest.raises(CommandError, match="not allowed with argument"):
        run_eval(s["dataset"].slug, "--outputs", str(path), "--target", "chat")


def test_a_chat_target_answers_every_case_and_the_run_summary_is_printed(fake_openai):
    s = make_scenario(n_trusted=3, n_monitoring=2)
    endpoint = make_endpoint(fake_openai.base_url, price_in_per_mtok=1.0, price_out_per_mtok=4.0)
    target = save_target(
        slug="chat", kind="openai_chat", endpoint=endpoint, config={"model": "candidate-model"}
    )
    fake_openai.default(text("No", prompt_tokens=100, completion_tokens=5))

    out = run_eval(s["dataset"].slug, "--target", "chat", "--candidate", "model-v2")

    run = Run.objects.get()
    assert (run.status, run.target, run.candidate) == (RunStatus.SUCCEEDED, target, "model-v2")
    assert f"Run {run.pk} of model-v2 on {s['dataset'].slug}: succeeded" in out
    assert "  cases 5, missing 0, errors 0" in out
    assert "  answer-exact: pass rate 100.0% (n=5, errors=0)" in out
    assert "  cost_per_case_usd: 0.00012" in out  # (100 * 1.0 + 5 * 4.0) / 1e6
    assert "latency_p50_ms" in out
    results = CaseResult.objects.filter(run=run)
    assert sorted(results.values_list("case__key", flat=True)) == ["m0", "m1", "t0", "t1", "t2"]
    assert {(r.output, r.input_tokens, r.output_tokens) for r in results} == {("No", 100, 5)}
    assert len(fake_openai.requests) == 5
    assert {r["body"]["model"] for r in fake_openai.requests} == {"candidate-model"}


def test_tier_trusted_runs_only_the_trusted_cases(fake_openai):
    s = make_scenario(n_trusted=2, n_monitoring=3)
    save_target(
        slug="chat",
        kind="openai_chat",
        endpoint=make_endpoint(fake_openai.base_url),
        config={"model": "candidate-model"},
    )
    fake_openai.default(text("No"))

    out = run_eval(s["dataset"].slug, "--target", "chat", "--tier", "trusted")

    run = Run.objects.get()
    assert run.tier == "trusted"
    assert "  cases 2, missing 0, errors 0" in out
    assert "  answer-exact: pass rate 100.0% (n=2, errors=0)" in out
    assert sorted(CaseResult.objects.filter(run=run).values_list("case__key", flat=True)) == ["t0", "t1"]
    assert len(fake_openai.requests) == 2


def test_tier_trusted_with_outputs_ignores_the_monitoring_outputs(tmp_path):
    s = make_scenario(n_trusted=2, n_monitoring=2)
    path = write_jsonl(tmp_path / "outputs.jsonl", outputs_for(s["cases"]))

    out = run_eval(s["dataset"].slug, "--outputs", str(path), "--tier", "trusted")

    assert "  cases 2, missing 0, errors 0" in out
    assert sorted(CaseResult.objects.values_list("case__key", flat=True)) == ["t0", "t1"]


def test_an_unknown_tier_is_refused(tmp_path):
    s = make_scenario()
    path = write_jsonl(tmp_path / "outputs.jsonl", outputs_for(s["cases"]))

    with pytest.raises(CommandError, match="invalid choice: 'gold'"):
        run_eval(s["dataset"].slug, "--outputs", str(path), "--tier", "gold")


def test_outputs_file_with_a_byte_order_mark_crlf_and_a_line_separator_inside_text_reads_as_the_cli_reads_it(
    tmp_path,
):
    s = make_scenario(n_trusted=2, n_monitoring=0)
    first, second = outputs_for(s["cases"])
    first["output"] = "No\u2028(see the policy)"  # U+2028 is a character of the text, not a line break
    lines = [json.dumps(item, ensure_ascii=False) for item in (first, second)]
    path = tmp_path / "outputs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")

    out = run_eval(s["dataset"].slug, "--outputs", str(path))

    assert "  cases 2, missing 0, errors 0" in out
    result = CaseResult.objects.get(case=s["cases"][0])
    assert result.output == "No\u2028(see the policy)"
