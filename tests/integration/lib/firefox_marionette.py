#!/usr/bin/env python3
"""Drives a running Firefox (started with --marionette -remote-allow-system-access) the way a
person would: answers Firefox's own PKCS#11 password prompt, then loads pages.

usage: firefox_marionette.py MARIONETTE_PORT MODULE_PATH TOKEN_LABEL PINS OUTDIR URL...

PINS is one PIN, or several separated by commas: the k-th prompt that names TOKEN_LABEL is
answered with the k-th (a person who mistyped, then typed the right PIN when asked again).
Every other prompt (other tokens, or the same one once PINS are used up) is cancelled: a wrong
PIN typed in a loop would lock a real card. Writes to OUTDIR:
  modules.json   the PKCS#11 modules Firefox loaded, with their slots and tokens
  page-N.json    {"url", "final_url", "error", "text"} for the N-th URL (N from 1)
  prompts.json   every password prompt seen: {"text", "action"}
"""

import json
import os
import sys
import time

from marionette_driver.marionette import Marionette
from marionette_driver import errors

OBSERVER_JS = r"""
const [label, pins] = arguments;
const PREF = "jpki.test.prompts";
Services.prefs.setStringPref(PREF, "[]");
const record = (entry) => {
  const list = JSON.parse(Services.prefs.getStringPref(PREF, "[]"));
  list.push(entry);
  Services.prefs.setStringPref(PREF, JSON.stringify(list));
  return list.length;
};
const observer = {
  observe(subject, topic, data) {
    const win = subject;
    const doc = win.document;
    const dialog = doc.getElementById("commonDialog");
    const box = doc.getElementById("password1Textbox");
    const info = doc.getElementById("infoBody");
    const text = info ? info.textContent : "";
    const answered = JSON.parse(Services.prefs.getStringPref(PREF, "[]"))
      .filter((p) => p.action === "answered").length;
    if (answered < pins.length && box && text.includes("(" + label + ")")) {
      record({ text, action: "answered" });
      box.value = pins[answered];
      dialog.acceptDialog();
    } else {
      record({ text, action: "cancelled" });
      dialog.cancelDialog();
    }
  },
};
Services.obs.addObserver(observer, "common-dialog-loaded");
return true;
"""

MODULES_JS = r"""
const db = Cc["@mozilla.org/security/pkcs11moduledb;1"].getService(Ci.nsIPKCS11ModuleDB);
const out = [];
for (const m of await db.listModules()) {
  const slots = [];
  for (const s of m.listSlots ? m.listSlots() : m.slots) {
    let token = null;
    try { token = s.getToken().tokenName; } catch (e) { token = null; }
    slots.push({ name: s.name, token });
  }
  out.push({ name: m.name, libName: m.libName, slots });
}
return out;
"""


def main():
    port, module, label, pins, outdir = sys.argv[1:6]
    urls = sys.argv[6:]
    m = Marionette(host="127.0.0.1", port=int(port))
    deadline = time.time() + 30
    while True:
        try:
            m.start_session(capabilities={"unhandledPromptBehavior": "ignore"})
            break
        except Exception:  # Firefox still starting
            if time.time() > deadline:
                raise
            time.sleep(0.3)
    m.timeout.page_load = 25
    m.timeout.script = 20

    m.set_context(m.CONTEXT_CHROME)
    m.execute_script(OBSERVER_JS, script_args=[label, pins.split(",")], new_sandbox=False)
    modules = m.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "(async () => {" + MODULES_JS + "})().then(done, e => done(String(e)));"
    )
    with open(os.path.join(outdir, "modules.json"), "w") as f:
        json.dump(modules, f, indent=1)

    for i, url in enumerate(urls, 1):
        m.set_context(m.CONTEXT_CONTENT)
        result = {"url": url, "error": None}
        t0 = time.time()
        try:
            m.navigate(url)
        except errors.MarionetteException as e:
            result["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
        result["navigate_s"] = round(time.time() - t0, 2)
        # navigate() can return before the page is there (a password prompt came in between):
        # wait until this URL's page, or an error page, has loaded.
        state = {}
        deadline = time.time() + 25
        while time.time() < deadline:
            try:
                state = m.execute_script(
                    "return {uri: document.documentURI, ready: document.readyState,"
                    " text: document.body ? document.body.innerText : ''};"
                ) or {}
            except errors.MarionetteException as e:
                state = {"uri": None, "ready": None, "text": "(unreadable: %s)" % e}
            uri = state.get("uri") or ""
            ready = state.get("ready")
            # Error pages may stay "interactive" (Marionette itself logs that).
            if uri.startswith("about:neterror") and ready in ("interactive", "complete"):
                break
            if uri == url and ready == "complete" and state.get("text"):
                break
            time.sleep(0.2)
        result["loaded_s"] = round(time.time() - t0, 2)
        result["final_url"] = state.get("uri")
        result["text"] = state.get("text")
        if (result["final_url"] or "").startswith("about:neterror"):
            try:
                result["net_error"] = m.execute_script(
                    "return document.getNetErrorInfo().errorCodeString;"
                )
            except errors.MarionetteException as e:
                result["net_error"] = "(unreadable: %s)" % str(e).splitlines()[0]
        with open(os.path.join(outdir, "page-%d.json" % i), "w") as f:
            json.dump(result, f, indent=1)

    m.set_context(m.CONTEXT_CHROME)
    prompts = json.loads(
        m.execute_script(
            "return Services.prefs.getStringPref('jpki.test.prompts', '[]');"
        )
    )
    with open(os.path.join(outdir, "prompts.json"), "w") as f:
        json.dump(prompts, f, indent=1)
    try:
        m.delete_session()
    except Exception:
        pass  # the suite stops Firefox itself


if __name__ == "__main__":
    main()
