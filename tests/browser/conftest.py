"""One ``jupyter lab``, one service and one Chromium page for the module; screenshots as artifacts.

Every uncaught error of the page (an exception or an unhandled rejection) fails the test it happened in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

from tests.jupyter.conftest import SharedService
from tests.jupyter.servers import JupyterProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"


class PageErrors:
    """The page's uncaught errors, collected as they happen; each test takes the ones of its own steps."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def collect(self, error: Exception) -> None:
        self.seen.append(f"{error.name}: {error.message}" if isinstance(error, PlaywrightError) else str(error))

    def take(self) -> list[str]:
        taken, self.seen = self.seen, []
        return taken


class Shots:
    """Numbered screenshots of the steps, in a folder the test run prints."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def take(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path))
        return path


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest) -> Shots:
    folder = ARTIFACTS / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print(f"\nbrowser screenshots: {folder}")
    return Shots(folder)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterProcess]:
    root = tmp_path_factory.mktemp("lab")
    # expose_app_in_browser lets the test run the panel's palette commands as a user would.
    server = JupyterProcess(root, root / "aiflow_home", "jupyterlab", "--LabApp.expose_app_in_browser=True").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_service(lab: JupyterProcess) -> Iterator[SharedService]:
    shared = SharedService(lab.aiflow_home)
    yield shared
    shared.stop()


@pytest.fixture(scope="module")
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture(autouse=True)
def no_page_error(page_errors: PageErrors) -> Iterator[None]:
    """Fail the test when the page had an uncaught error during it."""
    page_errors.take()
    yield
    errors = page_errors.take()
    assert not errors, "uncaught errors in the page:\n" + "\n".join(errors)


@pytest.fixture(scope="module")
def page(lab: JupyterProcess, shared_service: SharedService, page_errors: PageErrors) -> Iterator[Page]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make setup` installs it (apt-get install -y chromium)"
    shared_service.running()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("pageerror", page_errors.collect)
        page.set_default_timeout(30_000)
        page.goto(f"{lab.url}/lab?token={lab.token}")
        page.locator("#jp-main-dock-panel").wait_for()
        yield page
        context.close()
        browser.close()
