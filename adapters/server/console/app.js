// The turnlog web console: chat and audit over the service's HTTP API. No build step, no library.
//
// Every URL is relative to the page, so the console works at a server's root and under a mount
// path. The bearer token lives in sessionStorage (this tab only) and goes in an Authorization
// header: never in a URL. Server-sent events are read from fetch()'s body (an EventSource can
// neither POST nor send a header); a dropped stream is resumed with Last-Event-ID, and a frame
// whose id was already applied is ignored, so nothing is shown twice.
"use strict";

const TOKEN_KEY = "turnlog.token";
const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  conv: null, // the conversation shown in the chat
  streaming: false,
  listCursor: null,
  auditConv: null,
  eventsAfter: 0,
  requestsAfter: 0,
};

// -- HTTP -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  const h = { Accept: "application/json", ...extra };
  if (state.token) h.Authorization = "Bearer " + state.token;
  return h;
}

async function failure(res) {
  let code = "http_error";
  let message = res.status + " " + res.statusText;
  try {
    const body = await res.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch (_) {
    /* not JSON: keep the status line */
  }
  if (res.status === 401) signOut("Your token was refused: sign in again.");
  return new ApiError(res.status, code, message);
}

async function api(path, { method = "GET", body, accept } = {}) {
  const init = { method, headers: headers(accept ? { Accept: accept } : {}) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await failure(res);
  return res;
}

const getJSON = async (path) => (await api(path)).json();
const enc = encodeURIComponent;

// -- server-sent events from a fetch body -----------------------------------------------------

// Yields {id, event, data} as the WHATWG parser would dispatch them; comments are dropped and
// `retry:` updates the resume delay.
async function* sseEvents(res, hints) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let ev = { id: null, event: "message", data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A lone \r at the end may be the first half of \r\n: wait for the next piece.
        if (buffer[cut] === "\r" && cut === buffer.length - 1) break;
        const line = buffer.slice(0, cut);
        buffer = buffer.slice(cut + (buffer.startsWith("\r\n", cut) ? 2 : 1));
        if (line === "") {
          if (ev.data.length) yield { id: ev.id, event: ev.event, data: ev.data.join("\n") };
          ev = { id: null, event: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") ev.data.push(val);
        else if (field === "event") ev.event = val;
        else if (field === "id") ev.id = val;
        else if (field === "retry" && /^\d+$/.test(val)) hints.retry = Number(val);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One turn's stream, from its first request (a POST answering SSE) to its end, resuming from the
// last frame id after a dropped connection. `view` renders the frames.
async function followTurn(conv, first, view) {
  const hints = { retry: 2000 };
  let attempt = 0;
  let request = first;
  for (;;) {
    let res;
    try {
      res = await request();
      if (res.headers.get("turnlog-version")) view.lastId = Math.max(view.lastId, Number(res.headers.get("turnlog-version")));
      for await (const frame of sseEvents(res, hints)) {
        showConnection(false);
        attempt = 0;
        if (frame.id !== null) {
          const id = Number(frame.id);
          if (id <= view.lastId) continue; // already applied: a resume never doubles a step
          view.lastId = id;
        }
        view.frame(frame);
        if (view.ended) return;
      }
      // The stream ended without a terminal frame: a turn that parked, or a server that stopped
      // (then resume, unless the log says the turn is not running any more).
      if (view.ended || view.parked) return;
      const detail = await getJSON(`conversations/${enc(conv)}`);
      if (!detail.state.live) {
        // It ended and this stream missed how: show the conversation as the log keeps it.
        view.ended = true;
        if (state.conv === conv) showChat(conv).catch((e) => notice(e.message));
        return;
      }
    } catch (err) {
      if (err instanceof ApiError) throw err;
      // A network error: the turn goes on in the log. Resume after the last frame we applied.
    }
    if (view.lastId === 0) throw new ApiError(0, "network", "the connection failed before the turn started");
    showConnection(true);
    if (attempt > 0) await sleep(Math.min(hints.retry, 250 * 2 ** (attempt - 1)));
    attempt += 1;
    request = resumeRequest(conv, view);
  }
}

function resumeRequest(conv, view) {
  return () =>
    fetch(`conversations/${enc(conv)}/events?mode=delta`, {
      headers: headers({ Accept: "text/event-stream", "Last-Event-ID": String(view.lastId) }),
    }).then(async (res) => {
      if (!res.ok) throw await failure(res);
      return res;
    });
}

function showConnection(on) {
  $("connection").hidden = !on;
}

// -- notices and sign-in ----------------------------------------------------------------------

function notice(text) {
  const el = $("notice");
  el.textContent = text || "";
  el.hidden = !text;
}

function signOut(why) {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  render();
  if (why) {
    $("sign-in-error").textContent = why;
    $("sign-in-error").hidden = false;
  }
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  state.token = token;
  try {
    await getJSON("conversations?limit=1");
  } catch (err) {
    state.token = null;
    $("sign-in-error").textContent = err.status === 401 ? "That token was refused." : err.message;
    $("sign-in-error").hidden = false;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  $("sign-in-error").hidden = true;
  render();
}

// -- the conversation list --------------------------------------------------------------------

async function loadConversations(more = false) {
  const query = "conversations?limit=50" + (more && state.listCursor ? "&cursor=" + enc(state.listCursor) : "");
  const page = await getJSON(query);
  const list = $("conversations");
  if (!more) list.replaceChildren();
  for (const item of page.items) list.append(entry(item));
  state.listCursor = page.next;
  $("more-conversations").hidden = !page.next;
}

function entry(item) {
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.href = `#/${currentPage()}/${enc(item.id)}`;
  a.dataset.testid = "conversation";
  a.dataset.id = item.id;
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = item.title || item.id;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `${item.turns} turn${item.turns === 1 ? "" : "s"}` + (item.last_status ? ` · ${item.last_status}` : "");
  a.append(title, meta);
  if (item.id === selectedId()) a.setAttribute("aria-current", "page");
  li.append(a);
  return li;
}

// After a turn: its conversation's entry, from GET /conversations/{id} (which catches the summary
// up with the log: the list's index may be a moment behind a turn that has just ended).
async function refreshEntry(conv) {
  const detail = await getJSON(`conversations/${enc(conv)}`);
  const item = { ...detail.state, id: conv, title: detail.settings.title || detail.state.title };
  const fresh = entry(item);
  const old = document.querySelector(`#conversations [data-id="${CSS.escape(conv)}"]`);
  if (old) old.parentElement.remove();
  $("conversations").prepend(fresh);
}

// -- chat -------------------------------------------------------------------------------------

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function userMessage(text, seq) {
  const art = el("article", "message user");
  art.dataset.testid = "message";
  art.dataset.role = "user";
  if (seq) art.dataset.seq = String(seq);
  art.setAttribute("aria-label", "You");
  const body = el("div", "body", text);
  body.dataset.part = "text";
  art.append(body);
  const actions = el("div", "actions");
  const edit = el("button", "quiet", "Edit");
  edit.type = "button";
  edit.dataset.testid = "edit";
  edit.addEventListener("click", () => startEdit(art));
  actions.append(edit);
  art.append(actions);
  $("messages").append(art);
  return art;
}

// An assistant message: its steps in order (reasoning, text, tool calls and results), as frames
// or a stored row give them.
class AssistantView {
  constructor(userArt) {
    this.user = userArt;
    this.art = el("article", "message assistant");
    this.art.dataset.testid = "message";
    this.art.dataset.role = "assistant";
    this.art.setAttribute("aria-label", "Assistant");
    this.art.setAttribute("aria-busy", "true");
    this.steps = el("div", "steps");
    this.status = el("p", "status");
    this.status.dataset.part = "status";
    this.art.append(this.steps, this.status);
    $("messages").append(this.art);
    this.byId = new Map();
    this.lastId = 0;
    this.ended = false;
  }

  // Parked: a call waits for a person's decision (the stream ended after its approval_required).
  get parked() {
    return !this.ended && this.steps.querySelector(".approval:not([data-decision])") !== null;
  }

  step(s, append) {
    let node = this.byId.get(s.id);
    if (!node) {
      node = this.newStep(s);
      this.byId.set(s.id, node);
      this.steps.append(node.box);
    }
    if (s.type === "thinking" || s.type === "text") {
      node.text.textContent = append ? node.text.textContent + (s.content || "") : s.content || "";
    }
  }

  newStep(s) {
    if (s.type === "thinking") {
      const box = el("details", "step thinking");
      box.open = true;
      box.dataset.stepType = "thinking";
      box.append(el("summary", null, "Reasoning"));
      const text = el("div", "step-text");
      text.dataset.part = "thinking";
      box.append(text);
      return { box, text };
    }
    if (s.type === "text") {
      const box = el("div", "step text");
      box.dataset.stepType = "text";
      const text = el("div", "step-text");
      text.dataset.part = "text";
      box.append(text);
      return { box, text };
    }
    const box = el("div", "step tool " + s.type);
    box.dataset.stepType = s.type;
    if (s.type === "tool_call") {
      box.append(el("span", "tool-label", "Tool call"), el("code", "tool-name", s.name || ""));
      box.append(el("pre", "tool-args", s.arguments || ""));
    } else {
      const ok = s.success !== false;
      box.dataset.success = String(ok);
      box.append(el("span", "tool-label", ok ? "Tool result" : "Tool failed"), el("code", "tool-name", s.name || ""));
      box.append(el("pre", "tool-args", s.content || ""));
    }
    return { box, text: null };
  }

  frame(f) {
    let data;
    try {
      data = JSON.parse(f.data);
    } catch (_) {
      return;
    }
    if (f.event === "process_step") this.step(data.step, true);
    else if (f.event === "done") this.finish("done", data);
    else if (f.event === "error") this.finish("error", data);
    else if (f.event === "approval_required") this.approval(data);
    else if (f.event === "approval_decided") this.decided(data.call_id, data.decision);
  }

  finish(kind, data) {
    this.ended = true;
    this.art.setAttribute("aria-busy", "false");
    this.art.dataset.status = kind === "done" ? "finalized" : "failed";
    if (kind === "done") {
      const usage = data.usage ? ` · ${data.usage.total_tokens} tokens` : "";
      this.status.textContent = "Done" + usage;
    } else if (data.reason === "cancelled") {
      this.status.textContent = "Stopped.";
      this.art.dataset.status = "cancelled";
    } else {
      this.status.textContent = `Failed (${data.reason || "error"}): ${data.content || ""}`;
      this.status.classList.add("error");
    }
    this.addRegenerate();
  }

  addRegenerate() {
    if (this.art.querySelector("[data-testid=regenerate]")) return;
    const actions = el("div", "actions");
    const regen = el("button", "quiet", "Regenerate");
    regen.type = "button";
    regen.dataset.testid = "regenerate";
    regen.addEventListener("click", () => regenerate(this));
    actions.append(regen);
    this.art.append(actions);
  }

  decided(callId, decision) {
    for (const card of this.steps.querySelectorAll(".approval")) {
      if (card.dataset.callId !== callId || card.dataset.decision) continue;
      card.dataset.decision = decision;
      for (const b of card.querySelectorAll("button")) b.disabled = true;
      card.append(el("p", "help", decision === "approve" ? "Approved." : "Denied."));
    }
  }

  approval(data) {
    const card = el("div", "approval");
    card.setAttribute("role", "group");
    card.setAttribute("aria-label", `Approve the call of ${data.name}`);
    card.dataset.callId = data.call_id;
    card.append(el("p", null, "The model wants to run a tool that needs your approval:"));
    card.append(el("code", "tool-name", data.name));
    card.append(el("pre", "tool-args", typeof data.arguments === "string" ? data.arguments : JSON.stringify(data.arguments)));
    const row = el("div", "actions");
    const approve = el("button", null, "Approve");
    approve.type = "button";
    approve.dataset.testid = "approve";
    const deny = el("button", "danger", "Deny");
    deny.type = "button";
    deny.dataset.testid = "deny";
    const decide = (decision) => {
      this.decided(data.call_id, decision);
      runStream(state.conv, this, () =>
        api(`conversations/${enc(state.conv)}/approvals?mode=delta`, {
          method: "POST",
          body: { call_id: data.call_id, decision, reason: decision === "deny" ? "denied in the console" : "" },
          accept: "text/event-stream",
        }),
      );
    };
    approve.addEventListener("click", () => decide("approve"));
    deny.addEventListener("click", () => decide("deny"));
    row.append(approve, deny);
    card.append(row);
    this.steps.append(card);
    this.status.textContent = "Waiting for your approval.";
    if (document.activeElement === document.body || !document.activeElement) approve.focus();
  }

  // A stored assistant row: {text, steps, tool_calls} and its status.
  fromRow(row) {
    for (const s of row.content.steps || []) this.step(s, false);
    if (!(row.content.steps || []).some((s) => s.type === "text") && row.content.text) {
      this.step({ id: "text", type: "text", content: row.content.text }, false);
    }
    this.ended = row.status !== "live";
    this.art.setAttribute("aria-busy", String(!this.ended));
    this.art.dataset.status = row.status;
    this.status.textContent = row.status === "finalized" ? "Done" : row.status === "failed" ? "Ended early." : "";
    if (this.ended) this.addRegenerate();
  }
}

function setStreaming(on) {
  state.streaming = on;
  $("stop").disabled = !on;
  $("send").disabled = on;
}

async function runStream(conv, view, first) {
  setStreaming(true);
  try {
    await followTurn(conv, first, view);
  } catch (err) {
    view.finish("error", { reason: err.code || "error", content: err.message });
  } finally {
    showConnection(false);
    setStreaming(false);
    refreshEntry(conv).catch(() => {});
  }
}

function turnBody(message) {
  const body = { message, thinking: $("thinking").checked };
  const tools = $("tools").value.split(",").map((t) => t.trim()).filter(Boolean);
  if (tools.length) body.enabled_tools = tools;
  return body;
}

async function sendTurn(conv, message) {
  const user = userMessage(message);
  const view = new AssistantView(user);
  view.art.scrollIntoView({ block: "end" });
  await runStream(conv, view, async () => {
    const res = await api(`conversations/${enc(conv)}/turns?mode=delta`, {
      method: "POST",
      body: turnBody(message),
      accept: "text/event-stream",
    });
    user.dataset.seq = res.headers.get("turnlog-version") || "";
    return res;
  });
}

async function send(event) {
  event.preventDefault();
  if (state.streaming) return;
  const message = $("composer").value;
  if (!message.trim()) return;
  notice("");
  try {
    if (!state.conv) {
      const created = await (await api("conversations", { method: "POST", body: { title: message.slice(0, 80) } })).json();
      state.conv = created.id;
      history.replaceState(null, "", `#/chat/${enc(created.id)}`);
      chatHeader();
      $("chat-title").textContent = message.slice(0, 80);
    }
    $("composer").value = "";
    await sendTurn(state.conv, message);
  } catch (err) {
    notice(err.message);
  }
}

async function stop() {
  if (!state.conv) return;
  $("stop").disabled = true;
  try {
    await api(`conversations/${enc(state.conv)}/cancel`, { method: "POST", body: { reason: "stopped in the console" } });
  } catch (err) {
    if (err.code !== "no_turn_running") notice(err.message);
  }
}

// Regenerate: a new conversation forked just before the turn, and the same message sent again.
async function regenerate(view) {
  const seq = Number(view.user.dataset.seq);
  const text = view.user.querySelector("[data-part=text]").textContent;
  await forkAndSend(seq, text);
}

function startEdit(art) {
  if (art.querySelector("form")) return;
  const body = art.querySelector("[data-part=text]");
  const form = el("form", "edit");
  const id = "edit-" + (art.dataset.seq || Date.now());
  const label = el("label", "visually-hidden", "Edit your message");
  label.htmlFor = id;
  const area = el("textarea");
  area.id = id;
  area.value = body.textContent;
  area.rows = 3;
  area.dataset.testid = "edit-text";
  const save = el("button", null, "Send edited");
  save.type = "submit";
  save.dataset.testid = "edit-send";
  const cancel = el("button", "quiet", "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", () => form.remove());
  form.append(label, area, save, cancel);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    forkAndSend(Number(art.dataset.seq), area.value);
  });
  art.append(form);
  area.focus();
}

async function forkAndSend(seq, message) {
  if (state.streaming || !seq) return;
  notice("");
  try {
    const res = await api(`conversations/${enc(state.conv)}/fork`, { method: "POST", body: { at_version: seq - 1 } });
    const fork = await res.json();
    location.hash = `#/chat/${enc(fork.id)}`;
    await showChat(fork.id);
    await sendTurn(fork.id, message);
  } catch (err) {
    notice(err.message);
  }
}

function chatHeader() {
  $("chat-title").textContent = state.conv ? "Conversation " + state.conv : "New conversation";
  const link = $("chat-audit-link");
  link.hidden = !state.conv;
  if (state.conv) link.href = `#/audit/${enc(state.conv)}`;
}

async function showChat(conv) {
  state.conv = conv || null;
  $("messages").replaceChildren();
  chatHeader();
  if (!conv) return;
  const detail = await getJSON(`conversations/${enc(conv)}`);
  if (state.conv !== conv) return;
  if (detail.settings.title) $("chat-title").textContent = detail.settings.title;
  let rows = [];
  let cursor = null;
  do {
    const page = await getJSON(`conversations/${enc(conv)}/messages?limit=200` + (cursor ? "&cursor=" + enc(cursor) : ""));
    rows = rows.concat(page.messages);
    cursor = page.next;
  } while (cursor);
  if (state.conv !== conv) return;
  let user = null;
  let lastView = null;
  for (const row of rows) {
    if (row.role === "user") {
      user = userMessage(row.content.text ?? row.content.message ?? "", row.seq);
      lastView = null;
    } else {
      lastView = new AssistantView(user);
      lastView.fromRow(row);
    }
  }
  if (detail.state.live && user) {
    // A turn is running (or waits for an approval): follow it from its start.
    if (lastView) lastView.art.remove();
    const view = new AssistantView(user);
    view.lastId = Number(user.dataset.seq);
    runStream(conv, view, resumeRequest(conv, view));
  }
}

// -- audit ------------------------------------------------------------------------------------

async function showAudit(conv) {
  state.auditConv = conv || null;
  $("audit-empty").hidden = !!conv;
  $("audit-body").hidden = !conv;
  $("audit-chat-link").href = conv ? `#/chat/${enc(conv)}` : "#/chat";
  $("audit-title").textContent = conv ? "Audit of " + conv : "Audit";
  if (!conv) return;
  $("timeline").tBodies[0].replaceChildren();
  $("requests").replaceChildren();
  $("export-note").textContent = "";
  state.eventsAfter = 0;
  state.requestsAfter = 0;
  await Promise.all([verifyBadge(conv), checkpointStatus(conv), moreEvents(conv), moreRequests(conv)]);
}

async function verifyBadge(conv) {
  const badge = $("verify-badge");
  badge.dataset.state = "pending";
  badge.textContent = "checking…";
  const res = await fetch(`conversations/${enc(conv)}/verify`, { headers: headers() });
  if (res.status !== 200 && res.status !== 409) throw await failure(res);
  const report = await res.json();
  badge.dataset.state = report.ok ? "ok" : "broken";
  badge.textContent = report.ok ? "verified" : "broken";
  $("verify-detail").textContent = report.ok
    ? `${report.events} events, hash chain intact`
    : report.broken.join("; ");
}

async function checkpointStatus(conv) {
  const cp = await getJSON(`conversations/${enc(conv)}/checkpoint`);
  const out = $("checkpoint");
  out.dataset.status = cp.status;
  if (!cp.checkpoint || cp.status === "none") {
    out.textContent = cp.checkpoint
      ? `Not yet anchored: the newest checkpoint (size ${cp.checkpoint.size}) predates this conversation.`
      : "No signed checkpoint yet.";
    return;
  }
  const c = cp.checkpoint;
  out.textContent =
    `Versions 1–${cp.anchored} of ${cp.events} anchored by checkpoint “${c.origin}” of size ${c.size}` +
    ` (${c.timestamp}, key ${c.key_id.slice(0, 16)})` +
    (cp.status === "partial" ? `; ${cp.events - cp.anchored} later event(s) not yet anchored.` : ".");
}

async function moreEvents(conv) {
  const page = await getJSON(`conversations/${enc(conv)}/log?limit=500&after=${state.eventsAfter}`);
  if (state.auditConv !== conv) return;
  const body = $("timeline").tBodies[0];
  for (const e of page.events) {
    const tr = document.createElement("tr");
    tr.dataset.version = String(e.version);
    tr.dataset.type = e.type;
    const hash = el("code", null, e.hash.slice(0, 12));
    hash.title = e.hash;
    for (const cell of [String(e.version), e.type, "v" + e.schema, e.recorded_at, e.actor]) tr.append(el("td", null, cell));
    const td = el("td");
    td.append(hash);
    tr.append(td);
    body.append(tr);
    state.eventsAfter = e.version;
  }
  if (page.broken) {
    const tr = el("tr", "broken");
    tr.dataset.type = "broken";
    const td = el("td", null, "Broken link: " + page.broken + " Nothing at or after it is shown.");
    td.colSpan = 6;
    tr.append(td);
    body.append(tr);
  }
  $("more-events").hidden = !page.next;
}

async function moreRequests(conv) {
  const out = $("requests");
  let page;
  try {
    page = await getJSON(`conversations/${enc(conv)}/requests?limit=20&after=${state.requestsAfter}`);
  } catch (err) {
    out.append(el("p", "help", err.code === "forbidden" ? "Only an auditor may read the requests sent to the model: " + err.message : err.message));
    return;
  }
  if (state.auditConv !== conv) return;
  if (!page.requests.length && !state.requestsAfter) out.append(el("p", "help", "No model call yet."));
  for (const r of page.requests) {
    const d = el("details", "request");
    d.dataset.version = String(r.version);
    const s = el("summary");
    s.append(
      el("span", null, `Version ${r.version} · iteration ${r.iteration}` + (r.model ? ` · ${r.model} ` : " ")),
      el("span", "badge small", r.match ? "digest matches" : "digest differs"),
    );
    s.lastChild.dataset.state = r.match ? "ok" : "broken";
    d.append(s, el("p", "help", "sha256 " + r.sha256));
    let body = r.body;
    try {
      body = JSON.stringify(typeof r.body === "string" ? JSON.parse(r.body) : r.body, null, 2);
    } catch (_) {
      /* show it as sent */
    }
    d.append(el("pre", "request-body", body));
    out.append(d);
    state.requestsAfter = r.version;
  }
  $("more-requests").hidden = page.next === null || page.next === undefined;
}

async function downloadExport() {
  const conv = state.auditConv;
  const note = $("export-note");
  note.textContent = "Preparing…";
  try {
    const res = await api(`conversations/${enc(conv)}/export`, { accept: "application/jsonl" });
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = `${conv}.jsonl`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    note.textContent = `Downloaded ${conv}.jsonl (${blob.size} bytes).`;
  } catch (err) {
    note.textContent = err.message;
  }
}

// -- routing ----------------------------------------------------------------------------------

function route() {
  const [, page = "chat", id = ""] = location.hash.split("/");
  return { page: page === "audit" ? "audit" : "chat", id: decodeURIComponent(id) };
}
const currentPage = () => route().page;
const selectedId = () => route().id;

async function render() {
  const signedIn = !!state.token;
  $("sign-in").hidden = signedIn;
  $("app").hidden = !signedIn;
  $("nav").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  if (!signedIn) {
    $("token").focus();
    return;
  }
  const { page, id } = route();
  $("chat").hidden = page !== "chat";
  $("audit").hidden = page !== "audit";
  $("nav-chat").href = id ? `#/chat/${enc(id)}` : "#/chat";
  $("nav-audit").href = id ? `#/audit/${enc(id)}` : "#/audit";
  $("nav-chat").setAttribute("aria-current", page === "chat" ? "page" : "false");
  $("nav-audit").setAttribute("aria-current", page === "audit" ? "page" : "false");
  notice("");
  try {
    await loadConversations();
    if (page === "chat") {
      if (id !== (state.conv || "") || !$("messages").childElementCount) {
        if (!state.streaming) await showChat(id);
      }
    } else {
      await showAudit(id);
    }
  } catch (err) {
    notice(err.message);
  }
}

function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("composer-form").addEventListener("submit", send);
  $("composer").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer-form").requestSubmit();
    }
  });
  $("stop").addEventListener("click", stop);
  $("new-conversation").addEventListener("click", () => {
    if (state.streaming) return;
    location.hash = "#/chat";
    showChat(null);
    $("composer").focus();
  });
  $("more-conversations").addEventListener("click", () => loadConversations(true).catch((e) => notice(e.message)));
  $("more-events").addEventListener("click", () => moreEvents(state.auditConv).catch((e) => notice(e.message)));
  $("more-requests").addEventListener("click", () => moreRequests(state.auditConv).catch((e) => notice(e.message)));
  $("export").addEventListener("click", downloadExport);
  window.addEventListener("hashchange", render);
  render();
}

document.addEventListener("DOMContentLoaded", start);
