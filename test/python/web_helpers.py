"""Helpers of the web page's browser tests: Debian's Chromium driven by Playwright (never `playwright install`: the
browser is the system's, installed by scripts/chromium.sh), console and CSP watching, screenshots, and a small
streaming reverse proxy that puts the gateway under a path prefix."""
from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import ARTIFACTS, ROOT, USERS, free_port

CHROMIUM = "/usr/bin/chromium"
# DGW_UPDATE_SCREENSHOTS=1 writes the README's screenshots (docs/screenshots); otherwise they go to test-artifacts.
SHOTS = ROOT / "docs" / "screenshots" if os.environ.get("DGW_UPDATE_SCREENSHOTS") else ARTIFACTS / "web"

# Recorded in every page before its own scripts run (an init script comes through the DevTools protocol, not the page,
# so the page's CSP does not apply to it).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def launch_browser():
    """The system Chromium under Playwright, or a skip when it cannot be installed here."""
    installed = subprocess.run([str(ROOT / "scripts" / "chromium.sh")], capture_output=True, text=True)
    if installed.returncode != 0:
        pytest.skip("Debian's chromium could not be installed by scripts/chromium.sh: " + installed.stderr[-800:])
    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    browser = manager.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
    return manager, browser


class Watched:
    """A browser context and page whose console errors, page errors and CSP violations are collected."""

    def __init__(self, browser, width: int = 1280, height: int = 860):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.context.add_init_script(WATCH_CSP)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.context.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.context.on("weberror", lambda e: self.errors.append(f"page error: {e.error}"))

    def problems(self, allowed: tuple[str, ...] = ()) -> list[str]:
        """Console errors (except those matching an allowed text) and CSP violations of every page so far."""
        found = [e for e in self.errors if not any(a in e for a in allowed)]
        for page in self.context.pages:
            try:
                found += [f"CSP violation: {v}" for v in page.evaluate("window.__cspViolations || []")]
            except Exception:  # a page that navigated away or closed
                continue
        return found

    def shot(self, name: str, full_page: bool = False) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)

    def close(self) -> None:
        self.context.close()


def sign_in(w: Watched, url: str, user: str) -> None:
    w.page.goto(url)
    w.page.get_by_label("User name").fill(user)
    w.page.get_by_label("Password").fill(USERS[user][0])
    w.page.get_by_role("button", name="Sign in").click()
    w.page.get_by_role("heading", name="My clusters").wait_for()


class PrefixProxy:
    """`http://127.0.0.1:<port>/<prefix>/...` forwarded to the gateway's `/...`, streaming (for the event stream and
    followed logs), with the Host header kept, as a reverse proxy configured for the gateway does."""

    def __init__(self, upstream: str, prefix: str):
        self.upstream = upstream
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{prefix}/"
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the proxy did not start"

    def _run(self) -> None:
        from aiohttp import ClientSession, ClientTimeout, web

        async def forward(request: web.Request) -> web.StreamResponse:
            if not request.path.startswith(self.prefix + "/"):
                return web.Response(status=404, text="outside the prefix")
            target = self.upstream + request.path_qs[len(self.prefix):]
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
            async with ClientSession(timeout=ClientTimeout(total=None), auto_decompress=False) as session:
                async with session.request(request.method, target, headers=headers, data=await request.read(), allow_redirects=False) as up:
                    out = web.StreamResponse(status=up.status)
                    for k, v in up.headers.items():
                        if k.lower() not in ("content-length", "transfer-encoding", "connection", "keep-alive"):
                            out.headers.add(k, v)
                    await out.prepare(request)
                    async for chunk in up.content.iter_any():
                        await out.write(chunk)
                    await out.write_eof()
                    return out

        async def main() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", forward)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self.runner = runner
            self.ready.set()

        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(main())
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def api_auth(user: str) -> tuple[str, str]:
    return (user, USERS[user][0])


def shots_dir() -> Path:
    return SHOTS
