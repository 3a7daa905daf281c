"""The status dashboard rendered through the gateway in headless Chromium: live Bokeh plots (which need the
WebSocket relay), with the owner's session cookie; a screenshot goes to test-artifacts/dashboard-status.png."""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import subprocess
import time

import aiohttp
import pytest
import requests

from conftest import ARTIFACTS, ROOT, USERS, connect

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--remote-debugging-port=0", "--window-size=1400,1000"]


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    installed = subprocess.run([str(ROOT / "scripts" / "chromium.sh")], capture_output=True, text=True)
    if installed.returncode != 0:
        pytest.skip("Debian's chromium could not be installed by scripts/chromium.sh: " + installed.stderr[-800:])
    profile = tmp_path_factory.mktemp("chromium")
    proc = subprocess.Popen(["/usr/bin/chromium", *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.time() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        assert time.time() < deadline, "chromium did not start"
        time.sleep(0.1)
    yield int(port_file.read_text().split()[0])
    proc.terminate()
    proc.wait(10)


# Bokeh 3 draws inside shadow roots, which querySelectorAll does not enter on its own.
COUNT_CANVASES = """(function count(root) {
  let n = root.querySelectorAll('canvas').length;
  for (const el of root.querySelectorAll('*')) if (el.shadowRoot) n += count(el.shadowRoot);
  return n;
})(document)"""


class Page:
    """A minimal Chrome DevTools Protocol session over a page's WebSocket."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict] = []  # every event seen while waiting for answers

    async def call(self, method: str, **params):
        msg_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == msg_id:
                assert "error" not in msg, msg
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)


async def render(devtools_port: int, url: str, cookie: dict, screenshot) -> tuple[int, list[dict]]:
    """Opens `url` with the cookie set; answers the canvases drawn and the DevTools events seen meanwhile."""
    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://127.0.0.1:{devtools_port}/json/new?about:blank") as r:
            target = await r.json(content_type=None)
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws)
            await page.call("Network.enable")
            await page.call("Network.setCookie", url=url, **cookie)
            await page.call("Page.enable")
            await page.call("Page.navigate", url=url)
            plots = 0
            for _ in range(120):
                result = await page.call("Runtime.evaluate", returnByValue=True, expression=COUNT_CANVASES)
                plots = result["result"].get("value") or 0
                if plots >= 3:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)  # let the streamed data draw
            shot = await page.call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            await page.call("Runtime.evaluate", expression="1")  # collect the events queued meanwhile
            return plots, page.events


def test_status_page_renders_live_plots_in_chromium(gateway, chromium):
    with connect(gateway, "alice") as gw:
        cluster = gw.new_cluster()
        try:
            cluster.scale(1)
            with cluster.get_client() as client:
                client.wait_for_workers(1, timeout=120)
                futures = client.map(lambda x: (__import__("time").sleep(0.2), x)[1], range(50))
                with requests.Session() as s:
                    s.auth = ("alice", USERS["alice"][0])
                    s.get(f"{gateway.url}/api/v1/whoami").raise_for_status()
                    (name, value), = [(c.name, c.value) for c in s.cookies if c.name.startswith("dask-gateway-")]
                ARTIFACTS.mkdir(exist_ok=True)
                shot = ARTIFACTS / "dashboard-status.png"
                url = f"{gateway.url}/clusters/{cluster.name}/status"
                plots, events = asyncio.run(render(chromium, url, {"name": name, "value": value}, shot))
                assert client.gather(futures) == list(range(50))
            assert plots >= 3, "the Bokeh plots did not render through the gateway"
            assert shot.stat().st_size > 10_000
            # Bokeh's session runs over a WebSocket, opened through the gateway at the cluster's path.
            sockets = {e["params"]["requestId"]: e["params"]["url"] for e in events if e["method"] == "Network.webSocketCreated"}
            ws_path = f"ws://127.0.0.1:{gateway.port}/clusters/{cluster.name}/status/ws"
            assert any(u.startswith(ws_path) for u in sockets.values()), sockets
            frames = [e for e in events if e["method"] == "Network.webSocketFrameReceived" and e["params"]["requestId"] in sockets]
            assert len(frames) >= 5, f"only {len(frames)} WebSocket frames arrived"
            assert not [e for e in events if e["method"] == "Network.webSocketFrameError"]
            print(f"\n{plots} canvases; WebSockets {sorted(sockets.values())}; {len(frames)} frames received")
        finally:
            cluster.shutdown()
