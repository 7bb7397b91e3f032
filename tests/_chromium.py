"""A headless Chromium driven over the DevTools protocol, for tests/test_site.py.

The protocol runs over a pair of pipes (``--remote-debugging-pipe``: Chromium reads commands on
its fd 3 and writes replies and events on fd 4, each message JSON ended by a NUL), so no port is
opened and no client library is needed. ``load`` opens a page and reports what a reader's browser
would show and do: console errors, uncaught exceptions, failed loads, and every URL requested by
the page and its workers. Host names other than localhost do not resolve in this browser, so a
page that reaches for the network is seen to fail (and is reported) instead of depending on it.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import subprocess
import threading
import time

# Debian's chromium, as root in a container: the flags the workplace documents for a browser
# that makes no connection of its own (updates, sync, field trials) and needs no sandbox or GPU.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
)


class Chromium:
    def __init__(self, executable: str, user_data_dir: str, log_path: str):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def as_fds_3_and_4():  # in the child, before exec
            read_end = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [executable, *FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(3, 4), preexec_fn=as_fds_3_and_4,
            )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._replied = threading.Condition()
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buffer = b""
        while chunk := os.read(self._from_chrome, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._replied:
                        self._replies[message["id"]] = message
                        self._replied.notify_all()
                else:
                    self.events.put(message)
        self.events.put({"method": "closed"})

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        with self._replied:
            if not self._replied.wait_for(lambda: message["id"] in self._replies, timeout):
                raise TimeoutError(f"chromium did not answer {method} in {timeout} s")
            reply = self._replies.pop(message["id"])
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def _watch(self, session: str):
        for domain in ("Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Target.setAutoAttach",
            {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
            session=session,
        )

    def load(self, url: str, script: str, timeout: float = 60.0) -> dict:
        """Opens url, waits for its load event, then returns the value of the async `script`
        with what happened on the way: console errors, exceptions, failed requests, URLs."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        page = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=page)
        self._watch(page)
        report = {"errors": [], "requests": [], "failed": []}
        sessions = {page}
        self.send("Page.navigate", {"url": url}, session=page)
        deadline, loaded = time.monotonic() + timeout, False
        while not loaded:
            loaded = self._handle(self._next_event(deadline, url), sessions, page, report)
        value = self.send(
            "Runtime.evaluate",
            {"expression": script, "awaitPromise": True, "returnByValue": True},
            session=page, timeout=timeout,
        )
        if "exceptionDetails" in value:
            report["errors"].append(f"the check's script raised: {value['exceptionDetails']}")
        report["value"] = value["result"].get("value")
        time.sleep(0.5)  # late console messages and requests
        while not self.events.empty():
            self._handle(self.events.get(), sessions, page, report)
        self.send("Target.closeTarget", {"targetId": target})
        return report

    def _next_event(self, deadline: float, url: str) -> dict:
        try:
            return self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"{url} did not finish loading") from None

    def _handle(self, event: dict, sessions: set, page: str, report: dict) -> bool:
        method, params, session = event.get("method"), event.get("params", {}), event.get("sessionId")
        if method == "closed":
            raise RuntimeError("chromium exited")
        if session not in sessions and method != "Target.attachedToTarget":
            return False
        if method == "Target.attachedToTarget":  # a worker or frame of the page: watch it too
            child = params["sessionId"]
            sessions.add(child)
            self._watch(child)
            self.send("Runtime.runIfWaitingForDebugger", session=child)
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            report["errors"].append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            report["errors"].append(f"uncaught: {details.get('exception', {}).get('description', details['text'])}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            report["errors"].append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            report["requests"].append(params["request"]["url"])
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            report["failed"].append(f"{params['errorText']} ({params.get('blockedReason', '')})")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            report["failed"].append(f"{params['response']['status']} {params['response']['url']}")
        return method == "Page.loadEventFired" and session == page

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
