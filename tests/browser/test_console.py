"""The web console in a real headless Chromium: a chat that streams, stop, approve and deny,
regenerate, a connection cut mid-stream and resumed, and the audit page of a tampered log.

What the page shows is compared with what the log holds (the message rows the server folds from
it): a resumed stream must show every step exactly once, a stopped answer exactly the partial
output the log kept.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from turnlog.adapters.signing import Ed25519Signer
from turnlog.engine import create_checkpoint

from .conftest import ANN, AUDITOR, MOUNT, WAIT, Backend

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def words(n: int, stem: str = "w") -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


def wait(browser: WebDriver, condition: Any, timeout: float = WAIT) -> Any:
    return WebDriverWait(
        browser, timeout, poll_frequency=0.02, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition, message=f"waited {timeout} s; console log: {console_log(browser)}")


def console_log(browser: WebDriver) -> list[str]:
    try:
        return [e["message"] for e in browser.get_log("browser")][-10:]
    except Exception:
        return []


def tid(browser: WebDriver | WebElement, name: str) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, f"[data-testid='{name}']")


def open_console(browser: WebDriver, backend: Backend, token: str = "tok-ann", hash_: str = "#/chat") -> None:
    """The console at ``hash_``, signed in with ``token`` (through the sign-in form)."""
    browser.get(f"{backend.url}/{hash_}")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    field = wait(
        browser, lambda d: tid(d, "token")[0] if tid(d, "token") and tid(d, "token")[0].is_displayed() else None
    )
    field.send_keys(token)
    tid(browser, "sign-in")[0].click()
    wait(browser, lambda d: d.find_element(By.ID, "app").is_displayed())


def new_chat(browser: WebDriver) -> None:
    tid(browser, "new-conversation")[0].click()
    wait(browser, lambda d: not tid(d, "message"))


def send(browser: WebDriver, text: str, *, thinking: bool = False, tools: str = "") -> None:
    box = browser.find_element(By.ID, "thinking")
    if box.is_selected() != thinking:
        box.click()
    field = browser.find_element(By.ID, "tools")
    field.clear()
    if tools:
        field.send_keys(tools)
    composer = tid(browser, "composer")[0]
    composer.send_keys(text)
    tid(browser, "send")[0].click()


def assistants(browser: WebDriver) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, "[data-testid='message'][data-role='assistant']")


def last_assistant(browser: WebDriver) -> WebElement:
    return assistants(browser)[-1]


def text_of(article: WebElement, part: str = "text") -> str:
    return "".join(
        e.get_attribute("textContent") for e in article.find_elements(By.CSS_SELECTOR, f"[data-part='{part}']")
    )


def ended(browser: WebDriver) -> WebElement | None:
    found = assistants(browser)
    if found and found[-1].get_attribute("aria-busy") == "false":
        return found[-1]
    return None


def current_conversation(browser: WebDriver) -> str:
    return browser.execute_script("return decodeURIComponent(location.hash.split('/')[2] || '')")


def rows(backend: Backend, conv: str, headers: dict[str, str] = ANN) -> list[dict[str, Any]]:
    with backend.api() as client:
        r = client.get(f"/conversations/{conv}/messages", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["messages"]


def steps_shown(article: WebElement) -> list[tuple[str, str]]:
    out = []
    for step in article.find_elements(By.CSS_SELECTOR, "[data-step-type]"):
        kind = step.get_attribute("data-step-type")
        if kind in ("thinking", "text"):
            out.append((kind, step.find_element(By.CSS_SELECTOR, ".step-text").get_attribute("textContent")))
        else:
            out.append((kind, step.find_element(By.CSS_SELECTOR, ".tool-name").get_attribute("textContent")))
    return out


def steps_stored(row: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (s["type"], s["content"] if s["type"] in ("thinking", "text") else s["name"]) for s in row["content"]["steps"]
    ]


def screenshot(browser: WebDriver, path: Path, height: int) -> None:
    """The page in a window tall enough to show it whole (docs/console-*.png)."""
    browser.set_window_size(1280, height)
    try:
        browser.save_screenshot(str(path))
        assert path.stat().st_size > 10_000
    finally:
        browser.set_window_size(1280, 900)


# -- chat ------------------------------------------------------------------------------------------


def test_chat_streams_reasoning_text_and_tool_steps_as_they_arrive(browser: WebDriver, backend: Backend) -> None:
    open_console(browser, backend)
    message = words(40)
    send(browser, message, thinking=True)
    # Streaming: part of the answer is on the page while the turn is still running.
    wait(browser, lambda d: assistants(d) and 0 < len(text_of(last_assistant(d)).split()) < 40)
    assert last_assistant(browser).get_attribute("aria-busy") == "true"
    assert not tid(browser, "stop")[0].get_property("disabled")
    article = wait(browser, ended)
    assert article.get_attribute("data-status") == "finalized"
    assert text_of(article) == message
    assert text_of(article, "thinking") == "The user wrote 40 words; I repeat them."
    conv = current_conversation(browser)
    assert conv
    # The list shows the new conversation; the page shows exactly what the log keeps.
    wait(browser, lambda d: any(a.get_attribute("data-id") == conv for a in tid(d, "conversation")))
    user_row, answer_row = rows(backend, conv)
    assert user_row["role"] == "user"
    assert steps_shown(article) == steps_stored(answer_row)

    # A tool call and its result, then the answer quoting it; sent from the keyboard.
    composer = tid(browser, "composer")[0]
    browser.find_element(By.ID, "thinking").click()  # off
    browser.find_element(By.ID, "tools").send_keys("lookup")
    composer.send_keys('/call lookup {"key": "k1"}', Keys.ENTER)
    wait(browser, lambda d: len(assistants(d)) == 2 and ended(d))
    article = last_assistant(browser)
    kinds = [k for k, _ in steps_shown(article)]
    assert kinds == ["tool_call", "tool_result", "text"]
    assert steps_shown(article) == steps_stored(rows(backend, conv)[-1])
    result = article.find_element(By.CSS_SELECTOR, "[data-step-type='tool_result'] .tool-args").text
    assert '"value": "K1"' in result or '"value":"K1"' in result
    # Reloading the page shows the same conversation from the stored rows.
    browser.refresh()
    wait(browser, lambda d: len(assistants(d)) == 2 and ended(d))
    assert [m.get_attribute("data-role") for m in tid(browser, "message")] == ["user", "assistant"] * 2
    assert steps_shown(last_assistant(browser)) == steps_stored(rows(backend, conv)[-1])


def test_stop_in_mid_answer_keeps_the_partial_output(browser: WebDriver, backend: Backend) -> None:
    open_console(browser, backend)
    send(browser, words(300, "s"))  # ~9 s at 30 ms a word: stopped long before its end
    wait(browser, lambda d: assistants(d) and len(text_of(last_assistant(d)).split()) >= 5)
    tid(browser, "stop")[0].click()
    article = wait(browser, ended)
    assert article.get_attribute("data-status") == "cancelled"
    assert "Stopped" in article.find_element(By.CSS_SELECTOR, "[data-part='status']").text
    shown = text_of(article)
    assert 5 <= len(shown.split()) < 300
    # The page shows exactly the partial answer the log kept, and the turn is failed (cancelled).
    row = rows(backend, current_conversation(browser))[-1]
    assert row["status"] == "failed"
    assert row["content"]["text"] == shown
    assert tid(browser, "stop")[0].get_property("disabled")
    assert not tid(browser, "send")[0].get_property("disabled")


def test_a_connection_cut_mid_stream_resumes_with_nothing_missing_or_doubled(
    browser: WebDriver, backend: Backend
) -> None:
    open_console(browser, backend)
    message = words(60, "r")
    send(browser, message, thinking=True)
    wait(browser, lambda d: assistants(d) and 5 <= len(text_of(last_assistant(d)).split()) < 40)
    browser.execute_script(
        "const c = document.getElementById('connection'); window.reconnecting = 0;"
        "new MutationObserver(() => { if (!c.hidden) window.reconnecting++; }).observe(c, {attributes: true});"
    )
    before = len(backend.proxy.requests)
    assert backend.call(backend.proxy.cut()) >= 1
    article = wait(browser, ended)
    assert article.get_attribute("data-status") == "finalized"
    conv = current_conversation(browser)
    # The page resumed with GET .../events and Last-Event-ID (through the proxy, after the cut).
    resumed = [
        r for r in backend.proxy.requests[before:] if r.startswith(f"GET {MOUNT}/conversations/{conv}/events".encode())
    ]
    assert resumed, backend.proxy.requests[before:]
    assert b"last-event-id: " in resumed[0].lower()
    # Every step exactly once: the page's steps equal the stored ones, text for text.
    row = rows(backend, conv)[-1]
    assert text_of(article) == message == row["content"]["text"]
    assert steps_shown(article) == steps_stored(row)
    # The user saw "Reconnecting…" while it was cut, and no longer.
    assert browser.execute_script("return window.reconnecting") >= 1
    assert not tid(browser, "connection")[0].is_displayed()


def test_regenerate_forks_before_the_turn_and_answers_again(browser: WebDriver, backend: Backend) -> None:
    open_console(browser, backend)
    send(browser, "regenerate me please")
    wait(browser, ended)
    first = current_conversation(browser)
    tid(last_assistant(browser), "regenerate")[0].click()
    wait(browser, lambda d: current_conversation(d) not in ("", first))
    article = wait(browser, lambda d: len(assistants(d)) == 1 and ended(d))
    assert text_of(article) == "regenerate me please"
    fork = current_conversation(browser)
    with backend.api() as client:
        detail = client.get(f"/conversations/{fork}", headers=ANN).json()
    assert detail["state"]["parent"] == first
    assert [r["role"] for r in rows(backend, fork)] == ["user", "assistant"]
    assert [r["role"] for r in rows(backend, first)] == ["user", "assistant"]

    # Edit: the user's message changed, in a fork made before it; the fork it came from keeps it.
    tid(browser, "edit")[0].click()
    field = tid(browser, "edit-text")[0]
    field.clear()
    field.send_keys("edited words here")
    tid(browser, "edit-send")[0].click()
    wait(browser, lambda d: current_conversation(d) not in ("", first, fork))
    article = wait(browser, lambda d: len(assistants(d)) == 1 and ended(d))
    assert text_of(article) == "edited words here"
    edited = current_conversation(browser)
    assert [r["content"]["text"] for r in rows(backend, edited)] == ["edited words here"] * 2
    assert rows(backend, fork)[0]["content"]["text"] == "regenerate me please"


def test_approve_and_deny_a_tool_call_waiting_for_approval(browser: WebDriver, backend: Backend) -> None:
    open_console(browser, backend)
    send(browser, '/call delete_file {"path": "a.txt"}', tools="delete_file")
    approve = wait(browser, lambda d: tid(d, "approve")[0] if tid(d, "approve") else None)
    assert "delete_file" in browser.find_element(By.CSS_SELECTOR, ".approval").text
    # The parked turn holds no connection: a reload finds it waiting, from the log.
    browser.refresh()
    approve = wait(browser, lambda d: tid(d, "approve")[0] if tid(d, "approve") else None)
    assert last_assistant(browser).get_attribute("aria-busy") == "true"
    approve.click()
    article = wait(browser, ended)
    assert article.get_attribute("data-status") == "finalized"
    assert "deleted a.txt" in text_of(article)
    conv = current_conversation(browser)
    assert steps_shown(article)[-1] == ("text", rows(backend, conv)[-1]["content"]["text"])

    send(browser, '/call delete_file {"path": "b.txt"}', tools="delete_file")
    wait(browser, lambda d: len(tid(d, "deny")) == 2 and tid(d, "deny")[1].is_enabled())
    tid(browser, "deny")[1].click()
    article = wait(browser, lambda d: len(assistants(d)) == 2 and ended(d))
    result = article.find_element(By.CSS_SELECTOR, "[data-step-type='tool_result']")
    assert result.get_attribute("data-success") == "false"
    assert "deleted b.txt" not in text_of(article)


# -- audit -----------------------------------------------------------------------------------------


def _conversation_with_turns(backend: Backend, *messages: str) -> str:
    with backend.api() as client:
        r = client.post("/conversations", json={"title": "audited"}, headers=ANN)
        assert r.status_code == 201, r.text
        conv = r.json()["id"]
        for message in messages:
            with client.stream("POST", f"/conversations/{conv}/turns", json={"message": message}, headers=ANN) as s:
                assert s.status_code == 200
                s.read()
    return conv


def _tamper(db: Path, conv: str, version: int) -> None:
    # Straight into the SQLite file, as someone with the database would: who started the turn, changed.
    with sqlite3.connect(db, timeout=10) as con:
        (payload,) = con.execute(
            "SELECT payload FROM turnlog_events WHERE stream_id = ? AND version = ?", (conv, version)
        ).fetchone()
        forged = bytes(payload).replace(b'"subject":"ann"', b'"subject":"eve"')
        assert forged != payload
        con.execute(
            "UPDATE turnlog_events SET payload = ? WHERE stream_id = ? AND version = ?", (forged, conv, version)
        )


def test_audit_page_shows_timeline_requests_checkpoint_export_and_a_broken_badge(
    browser: WebDriver, backend: Backend, tmp_path: Path
) -> None:
    conv = _conversation_with_turns(backend, "first question", "second question")
    signer = Ed25519Signer.generate()
    backend.call(create_checkpoint(backend.log, signer, origin="browser-test"))
    with backend.api() as client:
        events = client.get(f"/conversations/{conv}/log", headers=AUDITOR).json()["events"]
    open_console(browser, backend, "tok-auditor", f"#/audit/{conv}")
    badge = wait(
        browser,
        lambda d: (
            tid(d, "verify-badge")[0] if tid(d, "verify-badge")[0].get_attribute("data-state") != "pending" else None
        ),
    )
    assert badge.get_attribute("data-state") == "ok"
    assert badge.text == "verified"
    timeline = tid(browser, "timeline")[0]
    wait(browser, lambda d: len(timeline.find_elements(By.CSS_SELECTOR, "tbody tr")) == len(events))
    first = timeline.find_elements(By.CSS_SELECTOR, "tbody tr")[0].find_elements(By.TAG_NAME, "td")
    assert [c.text for c in first[:3]] == ["1", "conversation_created", "v1"]
    assert first[4].text == "ann@acme"
    assert first[5].text == events[0]["hash"][:12]
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#requests details")) == 2)
    assert "digest matches" in browser.find_element(By.ID, "requests").text
    checkpoint = tid(browser, "checkpoint")[0]
    wait(browser, lambda d: checkpoint.get_attribute("data-status") == "anchored")
    assert "browser-test" in checkpoint.text
    tid(browser, "export")[0].click()
    with backend.api() as client:
        exported = client.get(f"/conversations/{conv}/export", headers=ANN)
    assert exported.status_code == 200
    wait(browser, lambda d: f"({len(exported.content)} bytes)" in d.find_element(By.ID, "export-note").text)
    shots = os.environ.get("TURNLOG_SCREENSHOTS")
    screenshot(browser, Path(shots or tmp_path) / "console-audit.png", 1150)

    # The same conversation after one stored payload was changed: the badge says broken, and the
    # timeline stops before the changed event.
    (changed,) = [e["version"] for e in events if e["type"] == "turn_started" and "second" in e["data"]["user_message"]]
    _tamper(backend.db, conv, changed)
    browser.refresh()
    badge = wait(
        browser,
        lambda d: (
            tid(d, "verify-badge")[0] if tid(d, "verify-badge")[0].get_attribute("data-state") != "pending" else None
        ),
    )
    assert badge.get_attribute("data-state") == "broken"
    assert badge.text == "broken"
    assert f"version {changed}" in browser.find_element(By.ID, "verify-detail").text
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='timeline'] tr.broken"))
    versions = [
        int(tr.get_attribute("data-version"))
        for tr in browser.find_elements(By.CSS_SELECTOR, "[data-testid='timeline'] tbody tr[data-version]")
    ]
    assert versions == list(range(1, changed))


def test_phone_width_and_chat_screenshot(browser: WebDriver, backend: Backend, tmp_path: Path) -> None:
    open_console(browser, backend)
    send(browser, "Show me how a turn looks, with its reasoning.", thinking=True)
    wait(browser, ended)
    send(browser, '/call lookup {"key": "weather"}', tools="lookup")
    wait(browser, lambda d: len(assistants(d)) == 2 and ended(d))
    conv = current_conversation(browser)
    wait(
        browser,
        lambda d: any(
            a.get_attribute("data-id") == conv and "2 turns · finalized" in a.text for a in tid(d, "conversation")
        ),
    )
    shots = Path(os.environ.get("TURNLOG_SCREENSHOTS") or tmp_path)
    screenshot(browser, shots / "console-chat.png", 1100)
    # A phone: 390 CSS pixels wide (Chromium's window cannot be made that narrow; emulate it).
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    )
    try:
        browser.refresh()
        wait(browser, ended)
        # Nothing scrolls sideways; the composer and send are there and wide enough to use.
        wide = browser.execute_script(
            "const w = document.documentElement.clientWidth;"
            "return [...document.querySelectorAll('body *')].filter(e => e.getClientRects().length"
            " && e.getBoundingClientRect().right > w + 1 && !e.closest('.table-wrap')).map(e => e.outerHTML.slice(0, 80));"
        )
        assert wide == []
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        assert tid(browser, "send")[0].is_displayed()
        assert tid(browser, "composer")[0].size["width"] > 300
        browser.save_screenshot(str(shots / "console-phone.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_pages_sse_parser_splits_frames_as_the_standard_says(browser: WebDriver, backend: Backend) -> None:
    # Pieces cut anywhere (inside a field, between CR and LF, inside a UTF-8 character), CR, LF and
    # CRLF line ends, comments, multi-line data and a retry hint: the frames a browser must see.
    open_console(browser, backend)
    frames = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const bytes = new TextEncoder().encode(
          "retry: 700\\r\\n\\r\\n: keep-alive\\n\\nid: 3\\r\\nevent: process_step\\r\\ndata: {\\"a\\":\\r\\n" +
          "data: \\"h\\u00e9\\"}\\r\\n\\r\\nid: 4\\revent: done\\rdata: {}\\r\\rdata:x\\n\\n");
        const cuts = [1, 9, 10, 21, 40, 41, 55, 60, 61, 62, 80, 95];
        const body = new ReadableStream({ start(c) {
          let at = 0;
          for (const cut of cuts.concat([bytes.length])) { c.enqueue(bytes.slice(at, cut)); at = cut; }
          c.close();
        }});
        (async () => {
          const hints = {};
          const out = [];
          for await (const f of sseEvents(new Response(body), hints)) out.push(f);
          done({ out, retry: hints.retry });
        })().catch((e) => done(String(e)));
        """
    )
    assert frames == {
        "out": [
            {"id": "3", "event": "process_step", "data": '{"a":\n"hé"}'},
            {"id": "4", "event": "done", "data": "{}"},
            {"id": None, "event": "message", "data": "x"},
        ],
        "retry": 700,
    }
