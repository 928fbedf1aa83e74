"""Headless Chromium driven over the DevTools protocol (websockets), and a `streamlit run` server, for e2e tests."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1400,1800",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.3)


class StreamlitServer:
    """`python -m streamlit run streamlit_app.py` on a free 127.0.0.1 port; stopped by its PID."""

    def __init__(self, script: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        from cli.app_commands import streamlit_command

        command = streamlit_command(self.port, "127.0.0.1", script)
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT, cwd=script.parent
        )

    def wait(self, timeout: float = 60) -> None:
        wait_http(f"{self.url}/_stcore/health", timeout)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Chromium:
    """One headless Chromium with one tab, talked to over CDP."""

    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="interop-chromium-"))
        self.proc = subprocess.Popen(
            [
                str(CHROMIUM),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        self._ws: Any = None

    def connect(self, timeout: float = 30) -> None:
        from websockets.sync.client import connect

        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (active.exists() and active.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(active.read_text().split()[0])
        wait_http(f"http://127.0.0.1:{port}/json/version", 10)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        self._ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=10)
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one CDP command and wait for its answer (events in between are skipped)."""
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def screenshot(self, path: Path) -> None:
        height = self.evaluate(
            "Math.max(document.body.scrollHeight, ...Array.from(document.querySelectorAll('section, div'))"
            ".slice(0, 400).map(e => e.scrollHeight))"
        )
        height = int(min(max(height or 1800, 900), 6000))
        self.call("Emulation.setDeviceMetricsOverride", width=1400, height=height, deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            if self._ws is not None:
                self._ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


#: Evaluated in the page: the script's state, uncaught exceptions and dialogs shown ("Page not found"), the URL path,
#: the page title, and visible text.
PAGE_STATE_JS = """
(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  return {
    state: app ? app.getAttribute('data-test-script-state') : null,
    connection: app ? app.getAttribute('data-test-connection-state') : null,
    exceptions: Array.from(document.querySelectorAll('[data-testid="stException"]')).map(e => e.innerText),
    dialogs: Array.from(document.querySelectorAll('[role="dialog"]')).map(e => e.innerText),
    path: location.pathname,
    dataframes: document.querySelectorAll('[data-testid="stDataFrame"]').length,
    tables: document.querySelectorAll('[data-testid="stTable"]').length,
    charts: document.querySelectorAll('[data-testid="stVegaLiteChart"]').length,
    skeleton: document.querySelectorAll('[data-testid="stSkeleton"]').length,
    title: (document.querySelector('h1') || {}).innerText || '',
    text: main.innerText || '',
  };
})()
"""


def wait_for_page(browser: Chromium, title: str, timeout: float = 60) -> dict[str, Any]:
    """Poll until the script has finished running with `title` shown; returns the final page state."""
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    settled = 0
    while time.monotonic() < deadline:
        state = browser.evaluate(PAGE_STATE_JS) or {}
        done = state.get("state") == "notRunning" and title in state.get("title", "") and not state.get("skeleton")
        settled = settled + 1 if done or state.get("exceptions") else 0
        if settled >= 3:  # stable for three polls: charts and tables have rendered
            return state
        time.sleep(0.4)
    raise TimeoutError(f"page {title!r} did not finish rendering: {json.dumps(state)[:500]}")


def click_and_wait(browser: Chromium, label: str, shows: str, timeout: float = 60) -> dict[str, Any]:
    """Click the button labelled `label`, then poll until the page shows `shows` and has finished running."""
    clicked = browser.evaluate(
        "(() => { const b = Array.from(document.querySelectorAll('button'))"
        f".find(b => b.innerText.trim().endsWith({json.dumps(label)})); if (b) b.click(); return !!b; }})()"
    )
    if not clicked:
        raise RuntimeError(f"no button labelled {label!r}")
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    settled = 0
    while time.monotonic() < deadline:
        state = browser.evaluate(PAGE_STATE_JS) or {}
        done = shows in state.get("text", "") and state.get("state") == "notRunning" and not state.get("skeleton")
        settled = settled + 1 if done or state.get("exceptions") else 0
        if settled >= 3:  # stable for three polls: tables have rendered
            return state
        time.sleep(0.4)
    raise TimeoutError(f"{shows!r} not shown after clicking {label!r}: {json.dumps(state)[:500]}")
