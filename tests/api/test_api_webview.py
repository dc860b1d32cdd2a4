"""The web view: its page and files need no token, and it works in a real browser.

The browser test drives Debian's headless ``chromium`` through ``chromedriver`` (Selenium,
pointed at both by path, so that nothing is downloaded) against a real server whose database
the collectors filled from a fakepve: a token is asked for once, the time control moves the
inventory, a resource shows its history and relations, the timeline opens a change.
Screenshots of that run go to ``$PVETRAIL_SCREENSHOTS`` (the committed ones in
``docs/screenshots/`` came from it) or to the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.auth import is_open
from tests.api.conftest import READER_SECRET, TOKENS, ServerFactory
from tests.api.test_api_schemathesis import ThreadServer, fill
from tests.collectors.conftest import operator, pve_pki, served  # noqa: F401 - fixtures
from tests.pve import ServedPve

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 30.0


@pytest.mark.parametrize(
    ("path", "opened"),
    [
        ("/", True),
        ("/ui/app.js", True),
        ("/ui/app.css", True),
        ("/ui/", False),
        ("/ui/../api/v1/resources", False),
        ("/ui/a/b.js", False),
        ("/api/v1/resources", False),
        ("/index.html", False),
    ],
)
def test_only_the_page_and_its_files_are_open(path: str, opened: bool) -> None:
    assert is_open(path) is opened


async def test_the_page_needs_no_token_but_its_data_calls_do(serve_app: ServerFactory) -> None:
    server = await serve_app(tokens=TOKENS)
    status, body, response = await server.get("/")
    assert status == 200
    assert response.content_type == "text/html"
    assert '<script src="/ui/app.js" defer></script>' in body
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    for name, ctype in (("app.js", "text/javascript"), ("app.css", "text/css")):
        status, body, response = await server.get(f"/ui/{name}")
        assert (status, response.content_type) == (200, ctype)
        # No external asset (the SVG namespace is a name, not a download): works offline.
        assert "https://" not in body
        assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")
    for path in ("/ui/nope.js", "/ui/index.html"):
        status, _, _ = await server.get(path)
        assert status == 404, path
    status, _, _ = await server.get("/ui/%2e%2e%2fwebview.py")
    assert status == 401  # no plain file name: not open, so a token is asked for first
    status, _, _ = await server.get("/api/v1/resources")
    assert status == 401
    status, _, _ = await server.get("/api/v1/resources", token=READER_SECRET)
    assert status == 200


# -- the real browser ----------------------------------------------------------------------------
def require_chromium() -> None:
    """Skip (or, under CI=true, fail) when Debian's chromium and chromedriver are missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if not missing:
        return
    problem = f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem}; CI=true needs the browser test (.ci/run installs them)")
    pytest.skip(problem)


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager may download nothing
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,860")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PVETRAIL_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def live_url(sqlite_url: str, served: ServedPve, operator: Any) -> Iterator[str]:  # noqa: F811
    """A server with tokens over a database the collectors filled from the fake (as
    ``pvetrail serve`` does): discoveries, a migration, a config change, a snapshot, a removal."""
    asyncio.run(fill(sqlite_url, served, operator))
    with ThreadServer(sqlite_url, served) as url:
        yield url


class Page:
    """What the test looks at, waiting for each thing to show."""

    def __init__(self, driver: Any, url: str, screenshots: Path) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.url = url
        self.screenshots = screenshots
        self.wait = WebDriverWait(driver, WAIT_S)

    def open(self, fragment: str) -> None:
        """Go to a view and wait until the page shows it (not the one before)."""
        self.driver.get(f"{self.url}/#{fragment}")
        self.until(f"#{fragment} to render", lambda: self.rendered() == f"#{fragment}")

    def rendered(self) -> str:
        return str(
            self.driver.execute_script(
                "return document.getElementById('main').dataset.rendered || ''"
            )
        )

    def until(self, what: str, check: Any) -> Any:
        from selenium.common.exceptions import TimeoutException

        try:
            return self.wait.until(lambda driver: check())
        except TimeoutException:
            main = self.driver.find_element("id", "main").text
            pytest.fail(f"waited {WAIT_S:.0f} s for {what}; the page shows:\n{main[:2000]}")

    def find(self, css: str) -> Any:
        found = self.driver.find_elements("css selector", css)
        return found[0] if found else None

    def texts(self, css: str) -> list[str]:
        """The texts of what ``css`` matches, read in one go (the page re-renders freely)."""
        script = (
            "return [...document.querySelectorAll(arguments[0])]"
            ".map(e => e.innerText.replace(/\\s+/g, ' ').trim())"
        )
        return list(self.driver.execute_script(script, css))

    def text(self, css: str) -> str:
        found = self.texts(css)
        return found[0] if found else ""

    def inventory_ids(self) -> list[str]:
        return self.texts("#inventory tbody tr[data-id] td:first-child")

    def idle(self) -> bool:
        return self.text("#status") == "" and bool(self.texts("#main > *"))

    def shoot(self, name: str) -> None:
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.driver.save_screenshot(str(self.screenshots / f"{name}.png"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_web_view_in_a_real_browser(browser: Any, live_url: str, screenshots: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    page = Page(browser, live_url, screenshots)
    browser.get(f"{live_url}/#view=inventory")

    # Asked once for a reader token, kept for the tab.
    dialog = page.until("the token dialog", lambda: page.find("#token-dialog[open]"))
    dialog.find_element("id", "token-input").send_keys(READER_SECRET)
    dialog.find_element("id", "token-submit").click()
    now = page.until("the inventory", lambda: page.inventory_ids())
    assert (
        browser.execute_script("return sessionStorage.getItem('pvetrail.token')") == READER_SECRET
    )
    # Guests first, grouped by type; 101 was removed by the last poll.
    assert now[:2] == ["lab/qemu/100", "lab/lxc/200"]
    assert "lab/qemu/101" not in now
    assert page.texts("#inventory tr.group td")[:2] == ["qemu (1)", "lxc (1)"]
    page.until("the page to settle", page.idle)
    page.shoot("inventory")

    # Move the time control: back to the first event, and the table shows the log's start.
    slider = browser.find_element("id", "position-slider")
    slider.send_keys(Keys.HOME)
    first = page.until(
        "the inventory at position 1",
        lambda: (
            page.inventory_ids() == []
            or (
                page.find("#inventory-count")
                and "at position 1" in page.find("#inventory-count").text
                and page.inventory_ids()
            )
        ),
    )
    assert len(first) == 1
    assert "position=1" in browser.current_url
    # A step at a time to the right, until VM 101 is there (discovered, not yet removed).
    head = int(slider.get_attribute("max"))
    position = 1
    while "lab/qemu/101" not in page.inventory_ids():
        assert position < head, "VM 101 never showed while the control moved through the log"
        slider.send_keys(Keys.ARROW_RIGHT)
        position += 1
        page.until(
            f"position {position}",
            lambda p=position: (
                page.find("#inventory-count")
                and (f"at position {p}" in page.find("#inventory-count").text)
            ),
        )
    then = browser.current_url

    # The link is shareable: a fresh load of it shows the same table (the token is kept).
    browser.get("about:blank")
    browser.get(then)
    assert "lab/qemu/101" in page.until("the shared inventory", page.inventory_ids)
    assert page.find("#token-dialog[open]") is None

    # Filters go into the link too.
    page.open("view=inventory&type=qemu&position=" + then.rsplit("position=", 1)[1].split("&")[0])
    assert set(page.until("qemu only", page.inventory_ids)) == {"lab/qemu/100", "lab/qemu/101"}

    # A resource: its state now, its history with field diffs, actors and windows, relations.
    page.open("view=inventory")
    page.until("the inventory", lambda: "lab/qemu/100" in page.inventory_ids())
    browser.find_element("css selector", "#inventory a[href*='lab%2Fqemu%2F100']").click()
    page.until("the resource page", lambda: "view=resource" in page.rendered())
    history = page.until("the history", lambda: page.texts("#history tbody tr"))
    assert any("migrated" in row and "node pve1 → pve2" in row for row in history), history
    assert "discovered" in history[-1]
    relations = page.texts("#relations li")
    assert "runs_on lab/node/pve2" in relations, relations
    assert any("snapshot_of" in r and "before-upgrade" in r for r in relations), relations
    state = dict(row.split(" ", 1) for row in page.texts("#state tr") if " " in row)
    assert state["node"] == "pve2"
    page.until("the page to settle", page.idle)
    browser.set_window_size(1280, 1500)  # state, relations, timeline and history in one shot
    page.shoot("resource")
    browser.set_window_size(1280, 860)
    # Its rollback targets, and a plan for one: steps as pvesh lines, the disruptive marked.
    targets = page.until("the rollback targets", lambda: page.texts("#targets tbody tr"))
    snapshot = next(i for i, row in enumerate(targets) if "snapshot before-upgrade:" in row)
    browser.find_elements("css selector", "#targets button.plan-button")[snapshot].click()
    steps = page.until("the plan", lambda: page.texts("#plan ol.steps li"))
    assert all(step.startswith("pvesh ") for step in steps), steps
    assert any(
        "pvesh create /nodes/pve2/qemu/100/snapshot/before-upgrade/rollback" in step
        for step in page.texts("#plan ol.steps li.disruptive")
    ), steps
    assert page.texts("#plan .badge.disruptive")
    browser.set_window_size(1280, 1700)
    browser.execute_script("document.getElementById('plan').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "plan.png"))
    browser.set_window_size(1280, 860)
    # Its timeline: a change's window is a span; a click shows the change.
    browser.find_elements("css selector", "svg.timeline rect.span")[-1].click()
    assert "between" in page.until("the change's detail", lambda: page.text("#detail"))

    # The cluster's timeline: every change as a span; a click opens it.
    page.open("view=timeline")
    browser.find_elements("css selector", "rect.span")[-1].click()  # drawn last: on top
    assert "observed between" in page.until("the change's detail", lambda: page.text("#detail"))
    page.shoot("timeline")

    # Changes between two times: from the first event to now, 101 was created and removed
    # (so it is no net change), 100 changed.
    page.open("view=changes")
    page.until("the changes form", lambda: page.find("#changes-form"))
    rows = page.until("the changes", lambda: page.texts("#changes tbody tr"))
    assert any(row.startswith("lab/qemu/100 changed") for row in rows), rows
    page.shoot("changes")

    # Drift against the baseline of the log's start: 100 moved away from pve1 since then.
    first = browser.execute_script(
        "return fetch('/api/v1/events?limit=1', {headers: {Authorization: 'Bearer ' + "
        "sessionStorage.getItem('pvetrail.token')}}).then(r => r.json())"
        ".then(page => page.items[0].observed_at)"
    )
    page.open(f"view=drift&baseline={first}")
    rows = page.until("the drift report", lambda: page.texts("#drift tbody tr"))
    assert any(row.startswith("lab/qemu/100 changed node pve1 pve2") for row in rows), rows
    assert page.text("#drift-count") == f"{len(rows)} differences"
    page.shoot("drift")


def test_screenshots_in_docs_are_real_pngs() -> None:
    """The committed screenshots came from the browser test: real, small PNG files."""
    folder = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    shots = sorted(folder.glob("*.png"))
    assert {p.stem for p in shots} >= {
        "inventory",
        "resource",
        "plan",
        "timeline",
        "changes",
        "drift",
    }
    for shot in shots:
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", shot
        assert 5_000 < len(data) < 400_000, shot
