"""tests/fake_openai.py's server in a process of its own, so the benchmark's GIL does not slow it.

Prints its base URL on the first line of stdout. Each line read from stdin is answered with
one JSON line of counters ({"calls": ..., "max_in_flight": ..., "cpu_s": ...}) and resets
max_in_flight; end of stdin stops the server.

    .venv/bin/python benchmarks/fake_server.py [--latency 0.1]
"""

import argparse
import json
import sys
import time

from _setup import REPO


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.1, help="seconds before every answer")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.fake_openai import FakeOpenAI, json_reply

    with FakeOpenAI(latency_s=args.latency) as fake:
        fake.default(json_reply({"score": 1, "passed": True, "rationale": "fine"}))
        print(fake.base_url, flush=True)
        for _ in sys.stdin:
            counters = {
                "calls": fake.calls,
                "max_in_flight": fake.max_in_flight,
                "cpu_s": time.process_time(),
            }
            print(json.dumps(counters), flush=True)
            fake.max_in_flight = 0  # between phases nothing is in flight
            fake.requests.clear()  # never read here; thousands of request bodies would only hold memory


if __name__ == "__main__":
    main()
