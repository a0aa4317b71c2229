"""The documentation site, opened in a real headless browser.

The site is ``docs/_build/html`` when it is built (``.ci/run`` builds it with
``sphinx-build -W --keep-going -n docs docs/_build/html``); otherwise it is built once
for the session into a temporary folder, or the tests skip when Sphinx is missing
(``pip install -e ".[docs]"``). The browser is Debian's ``chromium`` (``apt-get install
chromium``); without one the tests skip, saying so.

For the landing page, one API page and one notebook page: every local file the page
names exists, the page loads with no console error (an uncaught exception, a resource
that failed to load) and shows its content, and a screenshot goes to ``screenshots/``
beside the site (``docs/_build/screenshots/``). Offline, resources on other hosts (the
MathJax script) cannot load; those failures are allowed, any other is not.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILT = ROOT / "docs" / "_build" / "html"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER_TIMEOUT_S = 60

#: page -> texts its rendered DOM must contain
PAGES = {
    "index.html": ["<h1>pyvae", "Status", "Getting started", "mnist-samples.png"],
    "api/pyvae.models.vae.html": ['id="pyvae.models.vae.VAE"', 'id="pyvae.models.vae.VAE.encode"'],
    "notebooks/01_quickstart.html": ["What it teaches", "Install pyvae when", "_images/"],
}


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The built site's folder: docs/_build/html, or a build made for this session."""
    if (BUILT / "index.html").exists():
        return BUILT
    pytest.importorskip("sphinx", reason='Sphinx is not installed: pip install -e ".[docs]"')
    pytest.importorskip("myst_nb", reason='myst-nb is not installed: pip install -e ".[docs]"')
    out = tmp_path_factory.mktemp("docs") / "html"
    command = [sys.executable, "-m", "sphinx", "-q", "-W", "--keep-going", "-n"]
    command += ["-d", str(out.parent / "doctrees"), str(ROOT / "docs"), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"the docs build failed:\n{done.stdout}\n{done.stderr}"
    return out


@pytest.fixture(scope="session")
def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path and subprocess.run([path, "--version"], capture_output=True).returncode == 0:
            return path
    pytest.skip("no headless browser found: apt-get install chromium (as .ci/run does)")


@pytest.fixture(scope="session")
def screenshots(site: Path) -> Path:
    folder = site.parent / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


class _Links(HTMLParser):
    """The local files a page names (``src`` and ``href``), anchors and queries dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                url = urlparse(value)
                if not url.scheme and not url.netloc and url.path:
                    self.targets.append(unquote(url.path))


def run_browser(browser: str, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    command = [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--window-size=1280,1600",
        *args,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)


def console_errors(stderr: str) -> list[str]:
    """Console messages that are errors, except failed loads from other hosts."""
    errors = []
    for line in stderr.splitlines():
        if "CONSOLE" not in line and "Uncaught" not in line:
            continue
        if not re.search(r"Uncaught|Error|Failed to load resource|net::ERR_", line):
            continue
        if re.search(r"source: https?://", line) or "ERR_NAME_NOT_RESOLVED" in line:
            continue  # offline: MathJax and other resources on the web cannot load
        errors.append(line.strip())
    return errors


@pytest.mark.parametrize("page", list(PAGES), ids=list(PAGES))
def test_page_renders(page: str, site: Path, browser: str, screenshots: Path, tmp_path: Path):
    path = site / page
    assert path.exists(), f"{page} is not in the site {site}"
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    missing = sorted({t for t in parser.targets if not (path.parent / t).resolve().exists()})
    assert not missing, f"{page} names local files that do not exist: {missing}"

    url = path.resolve().as_uri()
    shot = screenshots / (page.replace("/", "_").removesuffix(".html") + ".png")
    shot.unlink(missing_ok=True)
    done = run_browser(browser, tmp_path / "profile", url, f"--screenshot={shot}")
    assert done.returncode == 0, f"{browser} failed on {page}:\n{done.stderr[-3000:]}"
    assert shot.exists() and shot.stat().st_size > 10_000, f"no screenshot of {page}"
    assert not console_errors(done.stderr), "\n".join(console_errors(done.stderr))

    dom = run_browser(browser, tmp_path / "profile", url, "--dump-dom")
    assert dom.returncode == 0, f"{browser} --dump-dom failed on {page}:\n{dom.stderr[-3000:]}"
    assert not console_errors(dom.stderr), "\n".join(console_errors(dom.stderr))
    expected = list(PAGES[page])
    if page.startswith("notebooks/") and (site / "_static" / "mathjax").is_dir():
        expected.append("<mjx-container")  # the maths typeset by the site's own MathJax
    for text in expected:
        assert text in dom.stdout, f"{page}: {text!r} is not in the rendered page"
