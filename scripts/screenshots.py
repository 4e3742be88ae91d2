"""Refresh the README's screenshots from the demo: `.venv/bin/python scripts/screenshots.py`.

Builds the demo on a SQLite file of its own, serves it on a free loopback port and photographs,
in Debian's Chromium through Playwright, what the demo's people see: the check awaiting
approval as the approver, the regressed check as the gate owner, their Waiting for me pages,
and the production monitor with its drift alert. Writes docs/screenshots/*.png.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    var = Path(tempfile.mkdtemp(prefix="evalgate-shots-"))
    env = {**os.environ, "EVALGATE_VAR_DIR": str(var), "DEBUG": "true"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO, env=env, check=True)
    demo = subprocess.run([*manage, "demo"], cwd=REPO, env=env, check=True, capture_output=True, text=True)
    password = re.search(r"with the password (\S+)", demo.stdout).group(1)
    checks = dict(re.findall(r"(\d+) (v[\d.a-z-]+) (?:PASS|FAIL|WARN)", demo.stdout.split("Checks:")[1]))
    by_candidate = {candidate: pk for pk, candidate in checks.items()}
    port = free_port()
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def login(user: str) -> None:
                page.context.clear_cookies()
                page.goto(f"{base}/admin/login/?next=/admin/")
                page.fill("#id_username", user)
                page.fill("#id_password", password)
                with page.expect_navigation():
                    page.click("input[type=submit]")

            def shoot(url: str, name: str, open_details: bool = False) -> None:
                page.goto(base + url)
                if open_details:
                    page.locator(".rule-cases details").first.evaluate("(d) => d.open = true")
                page.wait_for_timeout(1000)  # charts fit their boxes once the page has loaded
                page.screenshot(path=str(OUT / name), full_page=True)
                print("wrote", OUT / name)

            login("bob")
            shoot(f"/admin/gates_app/check/{by_candidate['v2.4.0-rc1']}/change/", "check-page.png", True)
            shoot("/admin/waiting/", "waiting-page-owner.png")
            monitor = re.search(r"/admin/monitoring_app/monitor/(\d+)/change/", demo.stdout).group(1)
            shoot(f"/admin/monitoring_app/monitor/{monitor}/change/", "monitor-page.png")
            shoot("/admin/monitoring_app/alert/1/change/", "alert-page.png")
            login("carol")
            shoot("/admin/waiting/", "waiting-page.png")
            shoot(f"/admin/gates_app/check/{by_candidate['v2.3.1']}/change/", "check-awaiting-approval.png")
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
