#!/usr/bin/env python3
"""Reads (and optionally navigates) the first tab of a running Chromium over the DevTools
protocol (--remote-debugging-port on 127.0.0.1).

usage: chromium_cdp.py PORT OUTFILE [--navigate URL] [--timeout SECONDS] [--until REGEX]

Polls document.body.innerText of the tab until it matches REGEX (default: a page from
s_server -www or a Chromium error code) or the timeout passes, then writes {"url", "text"} as
JSON to OUTFILE. Exit 0 if REGEX matched, 1 otherwise.
"""

import argparse
import json
import re
import time
import urllib.request

import websocket


def first_page(port, deadline):
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=5) as r:
                tabs = json.load(r)
            pages = [t for t in tabs if t.get("type") == "page"]
            if pages:
                return pages[0]
        except OSError:
            pass
        if time.time() > deadline:
            raise SystemExit("no DevTools page target on port %d" % port)
        time.sleep(0.2)


class Cdp:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("outfile")
    ap.add_argument("--navigate")
    ap.add_argument("--timeout", type=float, default=25)
    ap.add_argument("--until", default=r"Protocol  : TLSv1\.[23]|ERR_[A-Z_]+")
    args = ap.parse_args()
    deadline = time.time() + args.timeout
    until = re.compile(args.until)
    result = {"url": None, "text": ""}
    matched = False
    try:
        page = first_page(args.port, deadline)
        cdp = Cdp(page["webSocketDebuggerUrl"])
        if args.navigate:
            cdp.call("Page.navigate", url=args.navigate)
            time.sleep(0.2)
        while time.time() < deadline:
            try:
                r = cdp.call(
                    "Runtime.evaluate",
                    expression="JSON.stringify({url: location.href, "
                    "text: document.body ? document.body.innerText : ''})",
                    returnByValue=True,
                )
                value = r.get("result", {}).get("value")
                if value:
                    result = json.loads(value)
                    if until.search(result.get("text", "")):
                        matched = True
                        break
            except (RuntimeError, websocket.WebSocketException, OSError):
                pass  # page in transition
            time.sleep(0.2)
    except (SystemExit, RuntimeError, websocket.WebSocketException, OSError) as e:
        # Chromium gone or not answering: the checks read why from the file.
        result["error"] = str(e) or type(e).__name__
    finally:
        with open(args.outfile, "w") as f:
            json.dump(result, f, indent=1)
    raise SystemExit(0 if matched else 1)

if __name__ == "__main__":
    main()
