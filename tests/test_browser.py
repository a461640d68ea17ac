"""Real-browser tests: the built book offline, and notebook 01 live in JupyterLab.

Headless Debian Chromium driven by Playwright for Python (``executable_path`` = the system
``chromium``; ``playwright install`` is never called). Every request to a host other than
127.0.0.1 is aborted and recorded, so "works offline" is what is tested. Screenshots for people
go to ``_build/screenshots/``.

The book under test is ``_build/html`` when ``make book`` built it after the last change to notebooks
01 and 04, the package or the book config; otherwise a small book (the real ``_config.yml``, notebooks
01 and 04 freshly executed with their quick parameters, the other pages that exist) is built in a
temporary folder.
"""

from __future__ import annotations

import functools
import http.server
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")
NOTEBOOK = ROOT / "notebooks" / "01_histogram.ipynb"
PAGE = "book/executed/01_histogram.html"
EVALUATION = ROOT / "notebooks" / "04_evaluation.ipynb"
EVALUATION_PAGE = "book/executed/04_evaluation.html"
COLOUR = ROOT / "notebooks" / "06_colour_space.ipynb"
COLOUR_PAGE = "book/executed/06_colour_space.html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not found on PATH: apt-get install -y chromium "
                                                "(.ci/run does) to run the browser tests"),
    pytest.mark.skipif(sync_playwright is None,
                       reason="playwright for Python is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(not NOTEBOOK.is_file(), reason=f"{NOTEBOOK.relative_to(ROOT)} does not exist"),
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


# ---- helpers ------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser_context(p, user_data_dir: Path):
    """A fresh Chromium profile whose requests to any host but 127.0.0.1 are aborted and recorded."""
    context = p.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900})
    context.foreign = []

    def guard(route):
        url = urlparse(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in ("127.0.0.1",):
            context.foreign.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    return context


def _screenshot(page, name: str) -> Path:
    """Save what the viewport shows as ``_build/screenshots/<name>`` (for people, not compared)."""
    from histgan.io import atomic_path

    path = SCREENSHOTS / name
    with atomic_path(path, suffix=".png") as tmp:
        page.screenshot(path=str(tmp), type="png")
    return path


def _newer_than_sources(built: Path) -> bool:
    sources = [NOTEBOOK, NOTEBOOK.with_suffix(".py"), EVALUATION.with_suffix(".py"), COLOUR.with_suffix(".py"),
               ROOT / "_config.yml",
               ROOT / "package-lock.json", *(ROOT / "book" / "_static").glob("*.*"), *(ROOT / "histgan").glob("*.py")]
    return built.is_file() and all(built.stat().st_mtime > s.stat().st_mtime for s in sources if s.exists())


def _keep_existing(entries: list, src: Path) -> list:
    """Table-of-contents entries whose ``file`` exists under ``src`` (recursing into sections)."""
    kept = []
    for entry in entries:
        if "file" in entry and not any(src.glob(entry["file"] + ".*")):
            continue
        for key in ("chapters", "sections", "parts"):
            if key in entry:
                entry[key] = _keep_existing(entry[key], src)
        kept.append(entry)
    return kept


def _build_small_book(dest: Path) -> Path:
    """Execute notebooks 01, 04 (quick parameters of histgan.book.stages) and 06 (its own defaults: a tiny run
    trained in it) and build them with the real config and the book's other pages that exist (not -W:
    links to pages left out would warn), in ``dest``."""
    import yaml

    from histgan.book.job import Job
    from histgan.book.stages import NOTEBOOKS
    from histgan.book.notebooks import execute_notebook
    from histgan.book.offline_assets import install_node_modules

    for name in ("_config.yml", "package.json", "package-lock.json"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "book", dest / "book", ignore=shutil.ignore_patterns("executed", "offline"))
    install_node_modules(ROOT)  # once, in the project; the small book borrows it
    (dest / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)
    job = Job(root=ROOT, site=dest, quick=True, preset="quick")  # data and runs go into the scratch folder
    for notebook in (NOTEBOOK, EVALUATION):
        quick = next(spec.parameters(job) for spec in NOTEBOOKS if spec.name == notebook.stem)
        execute_notebook(notebook.with_suffix(".py"), dest / "book/executed" / notebook.name, quick,
                         cwd=notebook.parent, progress=False)
    execute_notebook(COLOUR.with_suffix(".py"), dest / "book/executed" / COLOUR.name, {}, cwd=COLOUR.parent,
                     progress=False)
    assert not list(NOTEBOOK.parent.glob("{*")), "a notebook wrote into a folder named after an unfilled template"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    if not any(dest.glob(toc["root"] + ".*")):
        toc["root"] = "book/executed/01_histogram"
    for key in ("chapters", "parts"):
        if key in toc:
            toc[key] = _keep_existing(toc[key], dest)
    (dest / "_toc.yml").write_text(yaml.safe_dump(toc), encoding="utf-8")
    done = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(dest), "--keep-going"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dest / "_build" / "html"


@pytest.fixture(scope="module")
def book_url(tmp_path_factory):
    """Serve the book's HTML on 127.0.0.1 from a thread; yields the base URL."""
    html = ROOT / "_build" / "html"
    if not all(_newer_than_sources(html / page) for page in (PAGE, EVALUATION_PAGE, COLOUR_PAGE)):
        if shutil.which("npm") is None and not (ROOT / "node_modules" / "mathjax").is_dir():
            pytest.skip("npm not found: building the book fetches MathJax and the widget manager with npm ci "
                        "(apt-get install nodejs npm; .ci/run does)")
        html = _build_small_book(tmp_path_factory.mktemp("book"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", html
    finally:
        server.shutdown()
        server.server_close()


# ---- the built book -----------------------------------------------------------------------------

def test_every_page_loads_offline(book_url, tmp_path):
    """Each page: no request to another host, no failed request, no 4xx/5xx response, no JS error."""
    base, html = book_url
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if not p.relative_to(html).parts[0].startswith("_"))
    assert PAGE in pages
    with sync_playwright() as p:
        context = _browser_context(p, tmp_path / "profile")
        page = context.new_page()
        problems = []
        page.on("requestfailed", lambda r: problems.append(f"failed {r.url}: {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status} {r.url}"))
        page.on("pageerror", lambda e: problems.append(f"JS error: {e}"))
        for name in pages:
            page.goto(base + name, wait_until="load")
            page.wait_for_load_state("networkidle")
        context.close()
    assert context.foreign == [], f"pages requested other hosts: {context.foreign}"
    assert problems == [], "\n".join(problems)
    assert len(pages) >= 1


def _typeset(page) -> None:
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("MathJax.startup.promise")


def _open_typeset(context, url: str, viewport: dict | None = None):
    """A new page of ``context`` at ``url`` (optionally at a viewport size), once MathJax has typeset it."""
    page = context.new_page()
    if viewport:
        page.set_viewport_size(viewport)
    page.goto(url, wait_until="load")
    _typeset(page)
    return page


def _soft_curve(page) -> list[str]:
    return page.eval_on_selector_all(".histgan-explorer polyline.hx-soft",
                                     "els => els.map(e => e.getAttribute('points'))")


def test_histogram_page_math_widgets_and_kernel_free_slider(book_url, tmp_path):
    base, _ = book_url
    with sync_playwright() as p:
        context = _browser_context(p, tmp_path / "profile")
        page = _open_typeset(context, base + PAGE)
        raw = page.evaluate("""() => { const b = document.querySelector('article') || document.body;
            const c = b.cloneNode(true);
            c.querySelectorAll('pre, code, script, mjx-container').forEach(e => e.remove());
            return c.innerText; }""")
        assert page.locator("mjx-container").count() > 0, "MathJax typeset nothing"
        assert "\\(" not in raw and "\\[" not in raw and "$$" not in raw, "raw TeX left on the page"
        # the live ipywidgets slider is rendered from the saved widget state (it moves, no redraw)
        page.wait_for_selector(".widget-slider, .jupyter-widgets.widget-slider", state="attached", timeout=15000)
        # the kernel-free explorer redraws
        explorer = page.locator(".histgan-explorer").first
        explorer.scroll_into_view_if_needed()
        frame0, curve0 = explorer.get_attribute("data-frame"), _soft_curve(page)
        assert frame0 and len(curve0) == 3
        explorer.locator("input.hx-K").focus()
        page.keyboard.press("ArrowLeft")
        frame1, curve1 = explorer.get_attribute("data-frame"), _soft_curve(page)
        assert frame1 != frame0 and curve1 != curve0
        explorer.locator("input.hx-B").focus()
        page.keyboard.press("ArrowRight")
        assert explorer.get_attribute("data-frame") != frame1 and _soft_curve(page) != curve1
        explorer.evaluate("e => e.scrollIntoView({block: 'end'})")
        _screenshot(page, "book_01_histogram.png")
        context.close()
    assert context.foreign == [], f"the page requested other hosts: {context.foreign}"


def test_colour_space_page_morph_slider_switches_frames_without_a_kernel(book_url, tmp_path):
    """The morph's precomputed frames: moving the slider shows another frame and its read-out."""
    base, _ = book_url
    with sync_playwright() as p:
        context = _browser_context(p, tmp_path / "profile")
        page = context.new_page()
        page.goto(base + COLOUR_PAGE)
        slider = page.locator(".histgan-frames").first
        slider.wait_for(state="attached", timeout=15000)
        slider.scroll_into_view_if_needed()
        img = slider.locator("img.fs-frame")
        src0, label0 = img.get_attribute("src"), slider.locator("output").inner_text()
        assert src0.startswith("data:image/png;base64,") and slider.get_attribute("data-frame") == "0"
        slider.locator("input.fs-t").focus()
        page.keyboard.press("ArrowRight")
        assert slider.get_attribute("data-frame") == "1"
        assert img.get_attribute("src") != src0 and slider.locator("output").inner_text() != label0
        _screenshot(page, "book_06_colour_space.png")
        context.close()
    assert context.foreign == [], f"the page requested other hosts: {context.foreign}"


def _displayed_equation_numbers(page) -> list[str]:
    """The numbers MathJax shows beside display equations, in page order, e.g. ["(12)"]: the label cell
    of each typeset display equation's MathML (the CHTML glyphs themselves are drawn by CSS)."""
    return page.evaluate("""() => Array.from(MathJax.startup.document.math)
        .filter(m => m.display)
        .map(m => MathJax.startup.toMML(m.root))
        .map(s => { const r = s.match(/<mlabeledtr[^>]*>\\s*<mtd[^>]*>\\s*<mtext[^>]*>([^<]*)<\\/mtext>/);
                    return r ? r[1].trim() : null; })
        .filter(x => x !== null)""")


def test_evaluation_page_table_and_equation_numbers(book_url, tmp_path):
    """Tables 2a (colour) and 2b (shape) are HTML tables with one row per model and baseline; eq (12) shows
    the paper's number."""
    from histgan.eval.baselines import BASELINES
    from histgan.config import VARIANTS

    base, _ = book_url
    with sync_playwright() as p:
        context = _browser_context(p, tmp_path / "profile")
        page = _open_typeset(context, base + EVALUATION_PAGE)
        assert _displayed_equation_numbers(page) == ["(12)"], "the ΔE equation carries the paper's number"
        text = page.inner_text("article")
        assert "eq (12)" in text
        tables = page.locator("article table")
        model_tables = {}
        for i in range(tables.count()):
            header = tables.nth(i).locator("th").all_inner_texts()
            if header and header[0].strip() == "model":
                model_tables[" | ".join(h.strip() for h in header[1:3])] = \
                    tables.nth(i).locator("tbody tr td:first-child").all_inner_texts()
        heads = " / ".join(model_tables)
        assert any(h.startswith("ΔE (mean ± std)") for h in model_tables), f"Table 2a is not an HTML table: {heads}"
        assert any(h.startswith("SSIM fg vs GT") for h in model_tables), f"Table 2b is not an HTML table: {heads}"
        for rows in model_tables.values():
            labels = " | ".join(rows)
            for name in (*VARIANTS, *BASELINES):  # each row's label ends with "(name)"
                assert sum(r.strip().endswith(f"({name})") for r in rows) == 1, f"not one row for {name}: {labels}"
        assert "| model |" not in text, "raw Markdown pipes left on the page"
        page.locator("article table").first.scroll_into_view_if_needed()
        _screenshot(page, "book_04_evaluation_table2.png")
        page.locator("mjx-container[display]").first.scroll_into_view_if_needed()
        _screenshot(page, "book_04_evaluation_eq12.png")
        context.close()
    assert context.foreign == [], f"the page requested other hosts: {context.foreign}"


def test_histogram_page_numbers_and_listings_fit(book_url, tmp_path):
    """Eqs (1)–(5) show the paper's numbers; no code listing runs past the page's right edge."""
    base, _ = book_url
    with sync_playwright() as p:
        context = _browser_context(p, tmp_path / "profile")
        page = _open_typeset(context, base + PAGE, {"width": 1280, "height": 900})
        assert _displayed_equation_numbers(page) == ["(1)", "(2)", "(3)", "(4)", "(5)"]
        overflowing = page.eval_on_selector_all(
            "article div.highlight pre", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).length")
        listings = page.locator("article div.highlight pre").count()
        assert listings > 0 and overflowing == 0, f"{overflowing} of {listings} listings are cut at the edge"
        page.locator("article div.highlight pre").nth(listings // 2).scroll_into_view_if_needed()
        _screenshot(page, "book_01_histogram_listing.png")
        context.close()
    assert context.foreign == [], f"the page requested other hosts: {context.foreign}"


# ---- JupyterLab ---------------------------------------------------------------------------------

LAB_SETTINGS = {  # user settings of the test's JupyterLab: no news popup, no cell virtualisation
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 with a token and isolated dirs, serving a copy of notebook 01."""
    import json
    import urllib.request

    work = tmp_path / "work" / "notebooks"
    work.mkdir(parents=True)
    shutil.copy2(NOTEBOOK, work / NOTEBOOK.name)
    settings = tmp_path / "settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values), encoding="utf-8")
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"), **{
        f"JUPYTER_{kind}_DIR": str(tmp_path / kind.lower()) for kind in ("CONFIG", "DATA", "RUNTIME")})
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={tmp_path / 'work'}", "--LabApp.expose_app_in_browser=True",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"{base}/lab/tree/notebooks/{NOTEBOOK.name}?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


_FIND_K_SLIDER = """() => {
  const sliders = Array.from(document.querySelectorAll('.jp-Notebook .widget-slider'));
  const labels = sliders.map(s => (s.querySelector('.widget-label') || {}).textContent || '');
  const i = labels.findIndex(t => /(^|[^A-Za-z])K([^A-Za-z]|$)|bins/.test(t.trim()));
  if (i < 0) return {labels};
  sliders.forEach(s => s.removeAttribute('data-test-k'));
  sliders[i].setAttribute('data-test-k', '1');
  return {labels, index: i};
}"""
_PLOT_SRC = """() => { const s = document.querySelector('[data-test-k]');
  const cell = s && s.closest('.jp-Cell');
  const img = cell && cell.querySelector('.jp-OutputArea img');
  return img ? img.getAttribute('src') : null; }"""


def test_jupyterlab_runs_notebook_and_k_slider_redraws(lab, tmp_path):
    with sync_playwright() as p:
        context = _browser_context(p, tmp_path / "profile")
        page = context.new_page()
        page.goto(lab, wait_until="load")
        page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                               "&& window.jupyterapp.shell.currentWidget.sessionContext", timeout=30000)
        page.evaluate("""async () => { const w = window.jupyterapp.shell.currentWidget;
            await w.context.ready; await w.sessionContext.ready;
            await window.jupyterapp.commands.execute('notebook:run-all-cells'); }""")
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
        assert errors.count() == 0, errors.first.inner_text()
        page.wait_for_selector(".jp-Notebook .widget-slider .noUi-handle", timeout=30000)
        found = page.evaluate(_FIND_K_SLIDER)
        assert "index" in found, f"no slider labelled K among {found['labels']}"
        page.wait_for_function(_PLOT_SRC, timeout=30000)
        before = page.evaluate(_PLOT_SRC)
        handle = page.locator("[data-test-k] .noUi-handle").first
        handle.scroll_into_view_if_needed()
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"() => {{ const s = ({_PLOT_SRC})(); return s && s !== {before!r}; }}", timeout=30000)
        page.locator("[data-test-k]").evaluate("e => e.scrollIntoView({block: 'center'})")
        _screenshot(page, "jupyterlab_01_histogram.png")
        context.close()
