"""Judge throughput: N judge calls against a local OpenAI-compatible server with fixed latency.

Prints wall time beside the floor calls x latency / concurrency and their ratio. The run
goes through the real job path (in-process here) and the real openai client.

    .venv/bin/python benchmarks/judge_throughput.py [--calls 1000] [--latency 0.1] [--concurrency 16]
"""

import argparse
import time

from _setup import django_on_scratch_database


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=200)
    args = parser.parse_args()
    django_on_scratch_database()

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from datasets_app import services as datasets
    from datasets_app.models import Case
    from grading_app import services as grading
    from grading_app.models import Grade
    from grading_app.outputs import parse_outputs
    from tests.fake_openai import FakeOpenAI, json_reply

    settings.EVALGATE_CHUNK_SIZE = args.chunk_size
    users = get_user_model().objects
    owner = users.create_user("owner")
    author = users.create_user("author")
    owner.groups.add(Group.objects.get(name="Rubric owner"))
    failure_class = datasets.save_failure_class(slug="helpfulness", name="Helpfulness")
    dataset = datasets.save_dataset(slug="bench", name="Bench", owner=None)
    Case.objects.bulk_create(
        Case(
            dataset=dataset,
            key=f"c{i}",
            tier="trusted",
            status="active",
            failure_class=failure_class,
            input={"messages": [{"role": "user", "content": f"Question {i}"}]},
            expected={},
        )
        for i in range(args.calls)
    )
    with FakeOpenAI(latency_s=args.latency) as fake:
        fake.default(json_reply({"score": 1, "passed": True, "rationale": "fine"}))
        endpoint = grading.save_endpoint(
            name="local", base_url=fake.base_url, max_concurrency=args.concurrency, timeout_s=30
        )
        rubric = grading.save_rubric(slug="helpful", name="Helpful", owner=owner)
        version = grading.create_rubric_version(
            rubric, actor=author, criteria="Helpful.", endpoint=endpoint, model="judge"
        )
        grading.approve_rubric_version(grading.submit_rubric_version(version, actor=author), actor=owner)
        grading.save_grader(slug="helpful", kind="llm_judge", rubric=rubric)
        # Every output differs, so no answer comes from the cache: all calls are live.
        outputs = parse_outputs([{"case": f"c{i}", "output": f"Answer {i}"} for i in range(args.calls)])
        started = time.perf_counter()
        run = grading.start_run(dataset=dataset, candidate="bench", outputs=outputs)
        wall = time.perf_counter() - started
        calls = fake.calls
    graded = Grade.objects.filter(case_result__run=run, passed=True).count()
    floor = args.calls * args.latency / args.concurrency
    latency_ms = args.latency * 1000
    print(f"judge throughput: {calls} calls, latency {latency_ms:.0f} ms, concurrency {args.concurrency}")
    print(f"  graded {graded}/{args.calls}; wall {wall:.2f} s; floor calls*latency/concurrency {floor:.2f} s")
    print(f"  ratio wall/floor: {wall / floor:.2f} (target: within 1.3)")


if __name__ == "__main__":
    main()
