"""The operator console in a real browser (Debian's Chromium, driven by Playwright).

Starts the real debug binary (`target/debug/streamguard`, or $STREAMGUARD_BIN) on a free
port against a fresh database, with three tokens (a processor's `write`, a viewer's `read`,
an operator's `read,admin`); makes conflicts through the emulator (rows streamed into the
buffer with insertAll, then batches that replace them) until the processor's breaker
opens; then opens the page and checks what a person would: the numbers, the states, the
chart, a conflict's attempts; performs a retry and a breaker reset as the operator; sees the
viewer's token get no buttons; saves screenshots to $SCREENSHOT_DIR (default
target/browser-screenshots).

Every wait is on a state (Playwright's `expect`, or polling the API until a condition
holds), never a fixed sleep. Run by `.ci/browser`.
"""

import json
import os
import re
import secrets
import socket
import subprocess
import time
import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("STREAMGUARD_BIN", ROOT / "target" / "debug" / "streamguard"))
SHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "target" / "browser-screenshots"))
TABLE = "nba-props-platform.nba_raw.bdl_player_boxscores"
PROCESSOR = "bdl_boxscores_processor"
LANDED = ["20260124_ATL_BOS", "20260124_CHI_CLE"]
BUFFERED = ["20260124_LAL_BOS", "20260124_NYK_MIA", "20260124_DEN_PHX", "20260124_GSW_SAC"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """A tiny JSON client for the service."""

    def __init__(self, base: str):
        self.base = base

    def call(self, method: str, path: str, token: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def until(self, what: str, check, timeout: float = TIMEOUT_S):
        """Polls `check` until it returns a truthy value; fails naming `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)


def rows(game: str, version: str):
    return [{"game_id": game, "game_date": "2026-01-24", "player_lookup": f"player_{p}",
             "points": p, "source": version} for p in range(3)]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    assert BINARY.exists(), f"{BINARY} is missing: run `cargo build` first"
    tokens = {name: secrets.token_hex(16) for name in ("loader", "viewer", "ops")}
    scopes = {"loader": "write", "viewer": "read", "ops": "read,admin"}
    lines = ";".join(f"{n} {scopes[n]} {hashlib.sha256(t.encode()).hexdigest()}" for n, t in tokens.items())
    port = free_port()
    db = f"streamguard_browser_{os.getpid()}"
    env = dict(os.environ,
               DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{db}",
               STREAMGUARD_LISTEN=f"127.0.0.1:{port}",
               STREAMGUARD_TOKENS=lines,
               # Rows stay buffered past the test, so every replace of them conflicts.
               STREAMGUARD_EMULATOR_BUFFER="10m",
               STREAMGUARD_EMULATOR_CONFLICT_SCOPE="row",
               STREAMGUARD_RETRY_DELAYS="2s",
               # Three conflicts trip the breaker, and it stays open until the operator resets it.
               STREAMGUARD_BREAKER_MIN_OUTCOMES="3",
               STREAMGUARD_BREAKER_THRESHOLD="0.5",
               STREAMGUARD_BREAKER_OPEN_FOR="1h",
               STREAMGUARD_BREAKER_MAX_OPEN_FOR="2h",
               NO_COLOR="1")
    log = open(tmp_path_factory.mktemp("log") / "service.log", "w+")
    proc = subprocess.Popen([str(BINARY), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    api = Api(f"http://127.0.0.1:{port}")

    def ready():
        assert proc.poll() is None, f"the service exited: {Path(log.name).read_text()}"
        try:
            return urllib.request.urlopen(api.base + "/readyz", timeout=2).status == 200
        except OSError:
            return False

    try:
        api.until("the service to be ready", ready, timeout=60)
        make_conflicts(api, tokens)
        yield api, tokens
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                        f"drop database if exists {db} with (force)"], check=False)
        if os.environ.get("CI"):
            print(Path(log.name).read_text()[-4000:])


def make_conflicts(api: Api, tokens):
    """Two games land; four are still in the streaming buffer: three conflict (and trip
    the processor's breaker), the fourth is held by the open breaker."""
    status, body = api.call("POST", f"/emulator/tables/{TABLE}/insertAll", tokens["loader"],
                            {"rows": [r for g in BUFFERED for r in rows(g, "stream")], "buffer": "10m"})
    assert status == 200, body
    for game in LANDED + BUFFERED:
        batch = {"processor_name": PROCESSOR, "table": TABLE, "key_columns": ["game_id"],
                 "partition_column": "game_date", "rows": rows(game, "backfill")}
        status, body = api.call("POST", "/v1/batches?wait=10", tokens["loader"], batch)
        assert status in (200, 202), body
    api.until("the breaker to open", lambda: api.call("GET", f"/v1/breakers/{PROCESSOR}", tokens["ops"])[1]["state"] == "open")
    api.until("4 deferred units", lambda: api.call("GET", "/v1/overview", tokens["ops"])[1]["units"]["deferred"] == 4)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def signed_in(browser, api: Api, token: str) -> Page:
    page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    page.set_default_timeout(TIMEOUT_S * 1000)
    page.goto(api.base + "/")
    expect(page.locator("#signin")).to_be_visible()
    page.fill("#token", token)
    page.click("#signin button[type=submit]")
    expect(page.locator("#whoami")).not_to_be_empty()
    return page


def shot(page: Page, name: str):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_now_panel_shows_states_and_what_needs_attention(service, browser):
    api, tokens = service
    page = signed_in(browser, api, tokens["ops"])
    expect(page.locator("#whoami")).to_have_text("ops (read, admin)")
    units = page.get_by_test_id("units")
    expect(units.locator('[data-state="deferred"] b')).to_have_text("4")
    expect(units.locator('[data-state="loaded"] b')).to_have_text("2")
    expect(units.locator('[data-state="failed"] b')).to_have_text("0")
    expect(page.get_by_test_id("breakers").locator('[data-state="open"] b')).to_have_text("1")
    expect(page.get_by_test_id("conflicts-unresolved")).to_have_text("3")
    # The open breaker is the first thing to look at, and each waiting game says why.
    expect(page.get_by_test_id("attention")).to_contain_text(f"Breaker {PROCESSOR} is open")
    waiting = page.get_by_test_id("waiting").locator("tbody tr")
    expect(waiting).to_have_count(4)
    for game in BUFFERED:
        expect(page.get_by_test_id("waiting")).to_contain_text(game)
    expect(waiting.first).to_contain_text("held by the open breaker")
    shot(page, "now")


def test_conflicts_chart_list_search_and_one_conflicts_timeline(service, browser):
    api, tokens = service
    page = signed_in(browser, api, tokens["ops"])
    page.click('#nav a[data-view="conflicts"]')
    bars = page.locator(f'[data-testid="chart"] g.bar-group[data-processor="{PROCESSOR}"]')
    expect(bars).to_have_count(1)
    expect(bars).to_have_attribute("data-total", "3")
    expect(page.get_by_test_id("conflicts").locator("tbody tr")).to_have_count(3)
    shot(page, "conflicts")
    page.fill('#filters input[name="key"]', "nyk")
    page.click("#filters button[type=submit]")
    expect(page.get_by_test_id("conflicts").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("conflicts")).to_contain_text("20260124_NYK_MIA")
    page.select_option('#filters select[name="resolution"]', "closed")
    page.click("#filters button[type=submit]")
    expect(page.locator("#list")).to_contain_text("No conflict matches")

    # One conflict: its attempt on the timeline, and when it is tried next and why.
    page.select_option('#filters select[name="resolution"]', "open")
    page.click("#filters button[type=submit]")
    page.get_by_test_id("conflicts").locator("tbody tr").first.click()
    attempts = page.get_by_test_id("attempts").locator("tbody tr")
    expect(attempts).to_have_count(1)
    expect(attempts.first).to_contain_text("conflict")
    expect(attempts.first).to_contain_text("streaming_buffer")
    expect(page.locator('[data-testid="timeline"] circle')).to_have_count(2)  # attempt 1 + next
    expect(page.get_by_test_id("next")).to_contain_text("breaker")

    # Retry now, through the open breaker: attempt 2 runs and conflicts again (the rows
    # are still buffered), and the page shows it.
    page.check('#a-retry input[name="ignore_breaker"]')
    page.fill('#a-retry input[name="reason"]', "browser test: buffer checked")
    page.click("#a-retry button[type=submit]")
    expect(page.locator("#a-retry .result")).to_contain_text("Retry scheduled")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(1)).to_contain_text("conflict")

    # A refusal shows the service's own problem+json detail.
    page.fill('#a-resolve input[name="note"]', "   ")
    page.click("#a-resolve button[type=submit]")
    expect(page.locator("#a-resolve .result")).to_contain_text("Refused (422)")
    expect(page.locator("#a-resolve .result")).to_contain_text("note")
    shot(page, "conflict")


def test_breaker_reset_as_admin(service, browser):
    api, tokens = service
    page = signed_in(browser, api, tokens["ops"])
    page.click('#nav a[data-view="breakers"]')
    row = page.locator(f'[data-testid="breaker-list"] tr[data-scope="{PROCESSOR}"]')
    expect(row).to_contain_text("open")
    shot(page, "breakers")
    row.click()
    expect(page.get_by_test_id("breaker-state")).to_contain_text("open")
    # The reason is required: the service refuses a blank one, and the page says why.
    page.fill('#breaker-action input[name="reason"]', " ")
    page.click('#breaker-action button[value="reset"]')
    expect(page.locator("#breaker-action .result")).to_contain_text("Refused (422)")
    page.fill('#breaker-action input[name="reason"]', "browser test: buffer drained")
    page.click('#breaker-action button[value="reset"]')
    expect(page.locator("#breaker-action .result")).to_contain_text("Done: the breaker is closed (recorded as ops)")
    expect(page.locator("#transitions")).to_contain_text("browser test: buffer drained")
    status, body = api.call("GET", f"/v1/breakers/{PROCESSOR}", tokens["ops"])
    assert status == 200 and body["transitions"][0]["actor"] == "ops", body


def test_read_token_sees_everything_but_no_buttons(service, browser):
    api, tokens = service
    page = signed_in(browser, api, tokens["viewer"])
    expect(page.locator("#whoami")).to_have_text("viewer (read)")
    expect(page.get_by_test_id("units").locator('[data-state="loaded"] b')).to_have_text("2")
    page.click('#nav a[data-view="conflicts"]')
    page.get_by_test_id("conflicts").locator("tbody tr").first.click()
    expect(page.get_by_test_id("attempts")).to_be_visible()
    expect(page.get_by_test_id("read-only")).to_be_visible()
    expect(page.locator("#a-retry, #a-resolve, #a-force, #a-cancel")).to_have_count(0)
    page.goto(api.base + f"/console/#/breakers/{PROCESSOR}")
    expect(page.get_by_test_id("breaker-state")).to_be_visible()
    expect(page.get_by_test_id("read-only")).to_be_visible()
    expect(page.locator("#breaker-action")).to_have_count(0)
    # The service itself refuses the viewer an action, whatever a page shows.
    status, body = api.call("POST", f"/v1/breakers/{PROCESSOR}/force-open", tokens["viewer"], {"reason": "x"})
    assert status == 403 and body["required_scope"] == "admin", body


def test_a_wrong_token_is_refused_with_the_services_words(service, browser):
    api, _ = service
    page = browser.new_context().new_page()
    page.goto(api.base + "/console/")
    page.fill("#token", "not-a-token")
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("the bearer token is not valid")


def test_batches_and_runs(service, browser):
    api, tokens = service
    page = signed_in(browser, api, tokens["ops"])
    page.click('#nav a[data-view="batches"]')
    recent = page.get_by_test_id("recent-batches").locator("tbody tr")
    expect(recent).to_have_count(len(LANDED + BUFFERED))
    recent.first.click()
    expect(page.get_by_test_id("batch-units").locator("tbody tr")).to_have_count(1)
    # Cancel a waiting unit from its batch, as the operator.
    status, waiting = api.call("GET", "/v1/units?state=deferred&limit=1", tokens["ops"])
    assert status == 200 and waiting["units"], waiting
    unit = waiting["units"][0]
    page.goto(api.base + f"/console/#/batches/{unit['batch_id']}")
    expect(page.locator("#unit-cancel select option")).to_have_count(1)
    page.fill('#unit-cancel input[name="reason"]', "browser test: not wanted")
    page.click("#unit-cancel button[type=submit]")
    expect(page.locator("#unit-cancel .result")).to_contain_text("Cancelled (recorded as ops)")
    expect(page.get_by_test_id("batch-units")).to_contain_text("cancelled")
    status, _ = api.call("GET", "/v1/runs", tokens["ops"])
    if status == 404:
        # The runs routes are not in this build: the page says so instead of failing.
        expect(page.get_by_test_id("runs-unavailable")).to_be_visible()
    else:
        assert status == 200
        expect(page.locator("#runs")).to_be_visible()


# STUB: the runs view against a canned `GET /v1/runs` answer in the shape of the runs
# contract (RUNS_CONTRACT.md), intercepted in the browser with Playwright's route(); it
# checks the page's rendering of a run, not the service's counting.
STUB_RUN = {
    "run": "bdl_boxscores backfill 2026-01-24", "processors": [PROCESSOR], "tables": [TABLE],
    "batches": 89,
    "units": {"total": 89, "pending": 0, "deferred": 3, "loaded": 86, "failed": 0,
              "unresolved": 0, "superseded": 0, "cancelled": 0},
    "loaded_first_attempt": 33, "deferred": 56, "resolved_by_retry": 53, "unresolved": 0,
    "failed": 0, "statements": 12, "attempts": 150, "started_at": "2026-01-25T09:00:00Z",
    "last_change_at": "2026-01-25T09:20:00Z", "done": False,
    "estimated_done_at": "2099-01-25T09:40:00Z",
}


def test_runs_view_renders_a_run_STUBBED_route(service, browser):
    api, tokens = service
    page = signed_in(browser, api, tokens["ops"])
    page.route(re.compile(r".*/v1/runs\?limit=20$"), lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({"runs": [STUB_RUN]})))
    page.click('#nav a[data-view="batches"]')
    card = page.locator(f'[data-run="{STUB_RUN["run"]}"]')
    expect(card).to_contain_text("Statements · attempts")
    expect(card).to_contain_text("12 · 150")
    expect(card).to_contain_text("33")
    expect(card).to_contain_text("expected")
    expect(card.locator(".bar i")).to_have_count(2)  # deferred and loaded
