"""A real browser (Debian's Chromium, driven by Playwright) against pytest-django's live server.

Locally the tests skip when Playwright or /usr/bin/chromium is missing; with CI=true they
fail instead, so CI can never pass by skipping them (scripts/test.sh installs Chromium).
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.db import connections

if TYPE_CHECKING:  # playwright may be missing locally: the tests then skip
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Headless, and quiet: no update checks, sync or other calls home; only 127.0.0.1 is reached.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 15_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: a real browser against a live server (never skipped when CI=true)"
    )


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"e2e prerequisite missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def restore_migrated_data(django_db_serialized_rollback: None) -> None:
    """live_server tests are transactional and truncate every table afterwards; serialized
    rollback puts back what migrations created (the role groups) for the tests after them."""


@pytest.fixture(autouse=True)
def jobs_in_process(settings: Any) -> None:
    """Without REDIS_URL, a run's jobs run in the thread that commits it (the live server's,
    for API requests), so a check is decided by the time the request that made it returns."""
    settings.REDIS_URL = ""


@pytest.fixture(autouse=True)
def browser_available() -> None:
    """Skip (locally) or fail (in CI) before a test builds any data it could not look at."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _require(False, "playwright is not installed (pip install -e '.[dev]')")
    _require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture
def browser(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator["Browser"]:
    """Headless Chromium for one test.

    Playwright's sync API marks its asyncio loop as running in this thread for as long as
    it lives. Django then refuses ORM calls (SynchronousOnlyOperation) and, worse, hands
    out a second, context-local set of connections. So Playwright lives only inside the
    test: the database fixtures (the flush, the serialized rollback that restores the role
    groups) run before and after it on the usual connections, and no later test in the
    session inherits a "running" loop. Starting Chromium takes under a second.
    """
    from playwright.sync_api import sync_playwright

    # The test touches the ORM only between browser steps, never concurrently with them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            # The connections the test body opened belong to Playwright's loop context:
            # close them while it still runs (PostgreSQL cannot drop a database in use).
            connections.close_all()


@pytest.fixture
def page(browser: "Browser", live_server: Any) -> Iterator["Page"]:
    """A fresh browser context (no cookies) per test, a large viewport for full screenshots."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def artifacts_dir() -> Path:
    """Where screenshots go: CI keeps test-artifacts/ (gitignored) as the run's artifacts."""
    path = REPO / "test-artifacts" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def login(page: "Page", username: str, password: str | None = None) -> None:
    """Sign in through the admin login form (factories' password is "pw-" + username)."""
    page.context.clear_cookies()
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password or f"pw-{username}")
    submit(page, "input[type=submit]")
    assert page.url.endswith("/admin/"), f"login as {username} failed"


def submit(page: "Page", selector: str) -> None:
    """Click a submit button and wait for the page it leads to (often the same URL again)."""
    with page.expect_navigation():
        page.click(selector)


def run_action(page: "Page", changelist: str, pks: list[int], action_label: str) -> None:
    """On a changelist, tick ``pks``, pick the action by its label and press Go."""
    page.goto(changelist)
    for pk in pks:
        page.check(f"input.action-select[value='{pk}']")
    page.select_option("select[name=action]", label=action_label)
    submit(page, "button[name=index]")


def confirm(page: "Page", verb: str, reason: str = "") -> None:
    """Second step of a two-step action (evalgate_confirm_action.html): reason, then confirm."""
    page.wait_for_selector("#id_reason")
    if reason:
        page.fill("#id_reason", reason)
    submit(page, f"input[type=submit][value='{verb}']")


def messages(page: "Page", level: str) -> list[str]:
    """The admin's flash messages of one level ("success", "error", "warning")."""
    return page.locator(f"ul.messagelist li.{level}").all_inner_texts()
