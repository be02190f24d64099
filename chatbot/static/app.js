// The chat page: streamed answers over SSE (fetch + ReadableStream), stop, new chat, pickers.
"use strict";

const state = { controller: null, busy: false };

// Model output and user text both pass through DOMPurify; links may not run script.
function renderMarkdown(target, text) {
  const html = marked.parse(text, { gfm: true, breaks: true });
  target.innerHTML = DOMPurify.sanitize(html, { FORBID_TAGS: ["style", "form", "input"] });
  target.querySelectorAll("pre code").forEach((code) => hljs.highlightElement(code));
  target.querySelectorAll("a").forEach((a) => { a.target = "_blank"; a.rel = "noopener noreferrer"; });
}

function addMessage(role, text) {
  const wrap = el("article", "message " + role);
  wrap.appendChild(el("div", "role", role === "user" ? "You" : $("#agent").textContent || "Assistant"));
  const body = el("div", "body");
  if (role === "user") body.textContent = text; else renderMarkdown(body, text);
  wrap.appendChild(body);
  $("#messages").appendChild(wrap);
  wrap.scrollIntoView({ block: "end" });
  return wrap;
}

function addNotice(wrap, text, kind) {
  const note = el("div", "notice " + (kind || ""), text);
  (wrap || $("#messages")).appendChild(note);
  return note;
}

function showSources(wrap, info) {
  if (!info.sources || !info.sources.length) return;
  const list = el("ol", "sources");
  info.sources.forEach((s) => {
    const item = el("li", (info.cited || []).includes(s.n) ? "cited" : "");
    const where = s.page !== null && s.page !== undefined ? ", page " + s.page : "";
    item.appendChild(el("strong", "", "[" + s.n + "] " + s.document + where));
    item.appendChild(el("span", "score", " score " + Number(s.score).toFixed(3)));
    item.appendChild(el("div", "snippet", s.snippet));
    list.appendChild(item);
  });
  wrap.appendChild(list);
  if (info.invalid && info.invalid.length) {
    addNotice(wrap, "Removed citations that match no source: " +
      info.invalid.map((n) => "[" + n + "]").join(" "), "warning");
  }
}

function renderHistory(session) {
  $("#messages").replaceChildren();
  session.messages.forEach((m) => {
    const wrap = addMessage(m.role, m.content);
    if (m.role === "assistant") {
      showSources(wrap, { sources: m.sources || [], cited: [], invalid: [] });
      if (m.stopped) addNotice(wrap, "stopped", "muted");
    }
  });
}

// Split an SSE byte stream into {event, data} records.
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const record = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      record.split("\n").forEach((line) => {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      });
      if (data.length) yield { event: name, data: JSON.parse(data.join("\n")) };
    }
  }
}

function setBusy(busy) {
  state.busy = busy;
  $("#send").disabled = busy;
  $("#stop").disabled = !busy;
}

async function send(text) {
  addMessage("user", text);
  const wrap = addMessage("assistant", "");
  wrap.classList.add("pending");
  const body = wrap.querySelector(".body");
  let answer = "";
  let frame = 0;
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  setStatus("connecting…", "connecting");
  try {
    const response = await fetch("/api/chat", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ message: text, model: $("#model").value || null }),
      signal: controller.signal,
    });
    if (!response.ok) throw envelopeError(response.status, await response.json().catch(() => ({})));
    for await (const ev of sseEvents(response)) {
      if (ev.event === "status" && ev.data.state === "queued") {
        setStatus("waiting in queue: position " + ev.data.position, "queued");
      } else if (ev.event === "status") {
        setStatus("generating…", "generating");
      } else if (ev.event === "notice") {
        addNotice(wrap, ev.data.message, ev.data.code);
      } else if (ev.event === "token") {
        answer += ev.data.text;
        if (!frame) frame = requestAnimationFrame(() => { frame = 0; renderMarkdown(body, answer); });
      } else if (ev.event === "sources") {
        answer = ev.data.text;
        showSources(wrap, ev.data);
      } else if (ev.event === "error") {
        throw envelopeError(ev.data.status || 502, ev.data);
      } else if (ev.event === "done") {
        setStatus("ready", "");
      }
    }
  } catch (err) {
    if (err.name === "AbortError") {
      setStatus("stopped", "");
      addNotice(wrap, "stopped", "muted");
    } else if (err.status === 503 || err.status === 504) {
      setStatus("The model is unreachable right now: " + err.message + " Try again in a moment.", "error");
    } else if (err.status === 429) {
      setStatus("The queue is full: " + err.message, "error");
    } else {
      setStatus("Error: " + err.message, "error");
    }
  } finally {
    if (frame) cancelAnimationFrame(frame);
    renderMarkdown(body, answer);
    wrap.classList.remove("pending");
    state.controller = null;
    setBusy(false);
  }
}

async function loadPickers(session) {
  try {
    const models = await api("GET", "/api/models");
    const select = $("#model");
    select.replaceChildren();
    models.data.forEach((m) => { const o = el("option", "", m.id); o.value = m.id; select.appendChild(o); });
    select.value = session.model;
  } catch (err) {
    setStatus("The model is unreachable right now: " + err.message, "error");
  }
  try {
    const cols = await api("GET", "/api/collections");
    cols.data.forEach((c) => { const o = el("option", "", c.name); o.value = c.name; $("#collection").appendChild(o); });
    $("#collection").value = session.collection || "";
  } catch (err) {
    const o = el("option", "", "(document service unavailable)");
    o.disabled = true;
    $("#collection").appendChild(o);
  }
}

async function init() {
  const session = await api("GET", "/api/session");
  $("#agent").textContent = session.agent;
  renderHistory(session);
  loadPickers(session);
  $("#composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("#input").value.trim();
    if (!text || state.busy) return;
    $("#input").value = "";
    send(text);
  });
  $("#input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#composer").requestSubmit(); }
  });
  $("#stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
  $("#new-chat").addEventListener("click", async () => {
    if (state.controller) state.controller.abort();
    renderHistory(await api("POST", "/api/session/new"));
    setStatus("new chat", "");
  });
  $("#model").addEventListener("change", () => api("PATCH", "/api/session", { model: $("#model").value }));
  $("#collection").addEventListener("change", () =>
    api("PATCH", "/api/session", { collection: $("#collection").value }));
}

init().catch((err) => setStatus("Error: " + err.message, "error"));
