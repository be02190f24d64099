// The chat page: a sidebar of stored conversations, streamed answers over SSE (fetch +
// ReadableStream), stop, regenerate, edit and resend, copy, rename, delete, export.
"use strict";

const state = { controller: null, busy: false, current: null, me: null, searchTimer: 0,
  ragK: null, think: true, commands: [], opening: null };
const STATUS_NOTES = { stopped: "stopped", repetition: "stopped: the answer started repeating itself",
  interrupted: "interrupted: the chatbot stopped mid-answer",
  error: "failed", streaming: "still being written…" };

const PHONE = window.matchMedia("(max-width: 639px)");
const PLACEHOLDER = { desktop: "Send a message (Enter to send, Shift+Enter for a new line, / for commands)",
  phone: "Message (/ for commands)" };

function agentName() { return $("#agent").textContent || "Assistant"; }

// A phone keeps one header row: the pickers and page links live in the drawer.
function placeMenu() {
  if (PHONE.matches) {
    $("#drawer-menu").append($("#pickers"), $("#links"));
  } else {
    $("#new-chat").before($("#pickers"));
    $("#new-chat").after($("#links"));
    setDrawer(false);
  }
  $("#input").placeholder = PHONE.matches ? PLACEHOLDER.phone : PLACEHOLDER.desktop;
}

function setDrawer(open) {
  document.body.classList.toggle("sidebar-open", open);
  $("#toggle-sidebar").setAttribute("aria-expanded", String(open));
}

// What an empty chat says to do.
function showEmptyState() {
  const box = el("div", "empty-state");
  box.appendChild(el("h2", "", "Start a chat"));
  box.appendChild(el("p", "", "Type a message below and press Enter. Attach a document with " +
    "Attach (or drop it here), or pick a collection under Documents to answer from your " +
    "files. Type / for commands; Help lists the keyboard shortcuts."));
  $("#messages").replaceChildren(box);
}

function addMessage(m) {
  const empty = $("#messages .empty-state");
  if (empty) empty.remove();
  const wrap = el("article", "message " + m.role);
  if (m.id) wrap.dataset.id = m.id;
  wrap.appendChild(el("div", "role", m.role === "user" ? "You" : agentName()));
  const body = el("div", "body");
  if (m.role === "user") body.textContent = m.content; else renderMarkdown(body, m.content);
  if (m.meta && m.meta.thinking) thinkingBlock(wrap).textContent = m.meta.thinking;
  wrap.appendChild(body);
  const actions = el("div", "actions");
  actions.appendChild(button("Copy", "copy", () => copyText(wrap.dataset.text)
    .then(() => setStatus("message copied", ""))));
  if (m.role === "user") actions.appendChild(button("Edit", "edit", () => startEdit(wrap)));
  wrap.appendChild(actions);
  wrap.dataset.text = m.content;
  $("#messages").appendChild(wrap);
  wrap.scrollIntoView({ block: "end" });
  return wrap;
}

// A thinking model's reasoning: a collapsed "Thinking" block above the answer (plain text).
function thinkingBlock(wrap) {
  let block = wrap.querySelector(".thinking");
  if (!block) {
    block = el("details", "thinking");
    block.appendChild(el("summary", "", "Thinking"));
    block.appendChild(el("div", "thinking-text"));
    wrap.insertBefore(block, wrap.querySelector(".body"));
  }
  return block.querySelector(".thinking-text");
}

// An answer's details, on demand: model, tokens, time to first token, speed, what it used.
function showDetails(wrap, d) {
  const old = wrap.querySelector(".answer-details");
  if (old) old.remove();
  const box = el("details", "answer-details");
  box.appendChild(el("summary", "", "Details"));
  const list = el("dl");
  const known = (v, unit) => (v === null || v === undefined ? "not reported" : v + unit);
  const tokens = d.completion_tokens === null || d.completion_tokens === undefined ? "not reported"
    : d.completion_tokens + " in the answer, " + known(d.prompt_tokens, " in the prompt");
  [["Model", d.model], ["Tokens", tokens], ["Time to first token", known(d.first_token_s, " s")],
    ["Speed", known(d.tokens_per_s, " tokens/s")],
    ["Documents", d.sources ? d.sources + " source(s) retrieved" : "none"],
    ["Link", d.link || "none"]].forEach(([name, value]) => {
    list.appendChild(el("dt", "", name));
    list.appendChild(el("dd", "", String(value)));
  });
  box.appendChild(list);
  wrap.querySelector(".actions").after(box);
}

// Only the last answer can be regenerated.
function markLast() {
  document.querySelectorAll(".message .regenerate").forEach((b) => b.remove());
  const answers = document.querySelectorAll(".message.assistant");
  const last = answers[answers.length - 1];
  if (last && state.current) {
    last.querySelector(".actions").appendChild(button("Regenerate", "regenerate", () => {
      if (!state.busy) { last.remove(); send({ regenerate: true }); }
    }));
  }
}

function renderConversation(conv) {
  $("#messages").replaceChildren();
  $("#conv-bar").hidden = !conv;
  $("#share-panel").hidden = true;
  if (!conv) { state.current = null; showAttachments([]); showEmptyState(); return; }
  state.current = conv.id;
  $("#conv-title").textContent = conv.title;
  $("#export-md").href = "/api/conversations/" + conv.id + "/export?format=markdown";
  $("#export-json").href = "/api/conversations/" + conv.id + "/export?format=json";
  conv.messages.forEach((m) => {
    const wrap = addMessage(m);
    if (m.role === "assistant") {
      showSources(wrap, { sources: m.sources || [], invalid: (m.meta || {}).invalid_citations || [] });
      // The notices the answer streamed (history trimmed, rag down...) stay after it ends.
      ((m.meta || {}).notices || []).forEach((n) => addNotice(wrap, n.message, n.code));
      if ((m.meta || {}).usage) showDetails(wrap, m.meta.usage);
      if (STATUS_NOTES[m.status]) addNotice(wrap, STATUS_NOTES[m.status], "muted status-" + m.status);
    }
  });
  loadAttachments().catch(() => {});
  if (conv.model) $("#model").value = conv.model;
  $("#collection").value = conv.collection || "";
  state.ragK = conv.rag_k || null;
  state.think = conv.think !== false;
  document.body.classList.toggle("hide-thinking", !state.think);
  markLast();
}

async function openConversation(id) {
  // A message sent while the chat loads waits for it (send awaits state.opening), so the
  // loaded history never redraws over the new turn and the turn goes to the chat clicked.
  const opening = (async () => {
    try {
      renderConversation(await api("GET", "/api/conversations/" + encodeURIComponent(id)));
      history.replaceState(null, "", "#" + id);
    } catch (err) {
      if (err.status === 404) { renderConversation(null); history.replaceState(null, "", "/"); }
      else showError(err);
    }
    highlightCurrent();
    if (PHONE.matches) setDrawer(false);
  })();
  state.opening = opening;
  try { await opening; } finally { if (state.opening === opening) state.opening = null; }
}

function highlightCurrent() {
  document.querySelectorAll("#conversations li").forEach((li) =>
    li.classList.toggle("current", li.dataset.id === state.current));
}

async function loadSidebar() {
  const q = $("#search").value.trim();
  const list = await api("GET", "/api/conversations?q=" + encodeURIComponent(q));
  const ul = $("#conversations");
  ul.replaceChildren();
  list.data.forEach((c) => {
    const li = el("li");
    li.dataset.id = c.id;
    const link = el("a", "title", c.title);
    link.href = "#" + c.id;
    link.addEventListener("click", (e) => { e.preventDefault(); if (!state.busy) openConversation(c.id); });
    li.appendChild(link);
    ul.appendChild(li);
  });
  if (!list.data.length) ul.appendChild(el("li", "empty", q ? "no chat matches" : "no chats yet"));
  highlightCurrent();
}

function startEdit(wrap) {
  if (state.busy || wrap.querySelector("textarea")) return;
  const body = wrap.querySelector(".body");
  const area = el("textarea", "edit-box");
  area.value = wrap.dataset.text;
  body.replaceChildren(area);
  const save = button("Save and send", "save-edit", () => {
    const text = area.value.trim();
    if (!text) return;
    // Everything after the edited message is replaced by the new answer.
    let next = wrap.nextElementSibling;
    while (next) { const after = next.nextElementSibling; next.remove(); next = after; }
    const id = Number(wrap.dataset.id);
    wrap.remove();
    send({ message: text, edit: id });
  });
  const cancel = button("Cancel", "cancel-edit", () => { body.textContent = wrap.dataset.text; });
  body.appendChild(save);
  body.appendChild(cancel);
  area.focus();
}

function setBusy(busy) {
  state.busy = busy;
  document.body.classList.toggle("busy", busy);
  $("#send").disabled = busy;
  $("#stop").disabled = !busy;
}

function showError(err) {
  if (err.status === 503 || err.status === 504) {
    setStatus("The model is unreachable right now: " + err.message + " Try again in a moment.", "error");
  } else if (err.status === 429) {
    setStatus("The queue is full: " + err.message, "error");
  } else {
    setStatus("Error: " + err.message, "error");
  }
}

// One turn: {message}, {message, edit: id} or {regenerate: true}.
async function send(action) {
  if (state.opening) { setBusy(true); await state.opening; }
  const userWrap = action.message !== undefined ? addMessage({ role: "user", content: action.message }) : null;
  const wrap = addMessage({ role: "assistant", content: "" });
  wrap.classList.add("pending");
  const body = wrap.querySelector(".body");
  let answer = "";
  let frame = 0;
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  setStatus("connecting…", "connecting");
  const request = { conversation_id: state.current, model: $("#model").value || null,
    collection: $("#collection").value, rag_k: state.ragK, think: state.think, ...action };
  let command = null;
  let finished = false;  // the stream said done: the answer is stored as shown
  let announceAnswer = false;
  try {
    const response = await fetch("/api/chat", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request), signal: controller.signal,
    });
    if (!response.ok) throw envelopeError(response.status, await response.json().catch(() => ({})));
    for await (const ev of sseEvents(response)) {
      if (ev.event === "conversation") {
        const fresh = state.current !== ev.data.id;
        state.current = ev.data.id;
        wrap.dataset.id = ev.data.answer_id;
        if (userWrap && ev.data.question_id) userWrap.dataset.id = ev.data.question_id;
        history.replaceState(null, "", "#" + ev.data.id);
        $("#conv-title").textContent = ev.data.title;  // an edited first question renames it
        if (fresh) { $("#conv-bar").hidden = false; loadSidebar().catch(() => {}); }
      } else if (ev.event === "command") {
        command = ev.data;
        answer = command.text;
        wrap.classList.add("command");
        applyCommand(command);
      } else if (ev.event === "status" && ev.data.state === "queued") {
        setStatus("waiting in queue: position " + ev.data.position, "queued");
      } else if (ev.event === "status" && ev.data.state === "fetching") {
        setStatus("reading " + ev.data.url + "…", "connecting");
      } else if (ev.event === "status") {
        setStatus("generating…", "generating");
      } else if (ev.event === "notice") {
        addNotice(wrap, ev.data.message, ev.data.code);
      } else if (ev.event === "thinking") {
        const box = thinkingBlock(wrap);
        box.textContent += ev.data.text;
      } else if (ev.event === "token") {
        answer += ev.data.text;
        if (!frame) frame = requestAnimationFrame(() => { frame = 0; renderMarkdown(body, answer); });
      } else if (ev.event === "usage") {
        showDetails(wrap, ev.data);
      } else if (ev.event === "sources") {
        answer = ev.data.text;
        showSources(wrap, ev.data);
      } else if (ev.event === "error") {
        throw envelopeError(ev.data.status || 502, ev.data);
      } else if (ev.event === "done") {
        finished = true;
        if (ev.data.status === "repetition") addNotice(wrap, STATUS_NOTES.repetition, "muted status-repetition");
        setStatus("ready", "");
        announceAnswer = true;
      }
    }
  } catch (err) {
    if (err.name === "AbortError") {
      setStatus("stopped", "");
      addNotice(wrap, "stopped", "muted");
    } else {
      showError(err);
    }
  } finally {
    if (frame) cancelAnimationFrame(frame);
    renderMarkdown(body, answer);
    wrap.dataset.text = answer;
    wrap.classList.remove("pending");
    state.controller = null;
    setBusy(false);
  }
  // Screen readers hear the whole answer once, politely, not token by token.
  if (announceAnswer) $("#announcer").textContent = agentName() + ": " + body.textContent;
  if (command) {  // answered here, not stored: the chat stays as it is on screen
    if (command.action === "reset") startNewChat("new chat");
    return;
  }
  // The stream carried the stored ids; only a stopped or failed answer is read back (it is
  // stored a moment after it ends), then the sidebar's new order.
  if (state.current && finished) {
    markLast();
    highlightCurrent();
    await loadSidebar().catch(() => {});
  } else if (state.current) {
    // Read back until stored, unless the user moved on meanwhile (a new chat, another one).
    const cid = state.current;
    for (let i = 0; i < 20 && state.current === cid; i++) {
      const conv = await api("GET", "/api/conversations/" + cid).catch(() => null);
      const last = conv && conv.messages[conv.messages.length - 1];
      if (state.current !== cid) break;
      if (conv && !(last && last.status === "streaming")) { renderConversation(conv); break; }
      await new Promise((r) => setTimeout(r, 250));
    }
    highlightCurrent();
    await loadSidebar().catch(() => {});
  }
}

// What a command changed: the pickers and the choices sent with the next message.
function applyCommand(command) {
  const st = command.state || {};
  const select = $("#model");
  if (st.model && ![...select.options].some((o) => o.value === st.model)) {
    const o = el("option", "", st.model); o.value = st.model; select.appendChild(o);
  }
  if (st.model) select.value = st.model;
  const cols = $("#collection");
  if (st.collection && ![...cols.options].some((o) => o.value === st.collection)) {
    const o = el("option", "", st.collection); o.value = st.collection; cols.appendChild(o);
  }
  cols.value = st.collection || "";
  state.ragK = st.rag_k || null;
  state.think = st.think !== false;
  document.body.classList.toggle("hide-thinking", !state.think);
}

function startNewChat(note) {
  if (state.controller) state.controller.abort();
  renderConversation(null);
  history.replaceState(null, "", "/");
  highlightCurrent();
  state.ragK = null;
  setStatus(note, "");
}

// The hint list under the box while it holds the start of a command.
function showHints() {
  const text = $("#input").value;
  const ul = $("#command-hints");
  const word = text.split(/\s/)[0].toLowerCase();
  const named = /\s/.test(text);  // past the name: the hints of that command only
  const matches = text.startsWith("/") && !text.includes("\n") ? state.commands.filter((c) =>
    named ? c.usage.split(" ")[0] === word : c.usage.startsWith(word)) : [];
  ul.replaceChildren();
  matches.forEach((c) => {
    const li = el("li");
    li.setAttribute("role", "option");
    li.appendChild(el("code", "", c.usage));
    li.appendChild(document.createTextNode(c.description));
    li.addEventListener("mousedown", (e) => {
      e.preventDefault();
      $("#input").value = c.usage.split(" ")[0] + (c.usage.includes(" ") ? " " : "");
      $("#input").focus();
      showHints();
    });
    ul.appendChild(li);
  });
  ul.hidden = !matches.length;
}

// Files attached to the current chat: chips above the box.
function showAttachments(files) {
  const ul = $("#attachments");
  ul.replaceChildren();
  files.forEach((f) => {
    const li = el("li", "", f.name + (f.indexed ? " (indexed)" : ""));
    li.title = f.chars + " characters";
    ul.appendChild(li);
  });
  ul.hidden = !files.length;
}

async function loadAttachments() {
  if (!state.current) { showAttachments([]); return; }
  const list = await api("GET", "/api/attachments?conversation_id=" + encodeURIComponent(state.current));
  showAttachments(list.data);
}

async function attachFile(file) {
  if (!file || state.busy) return;
  const form = new FormData();
  form.append("file", file, file.name);
  if (state.current) form.append("conversation_id", state.current);
  setBusy(true);
  setStatus("reading " + file.name + "…", "connecting");
  try {
    const response = await fetch("/api/attachments", { method: "POST", body: form });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw envelopeError(response.status, data);
    if (state.current !== data.conversation_id) {
      state.current = data.conversation_id;
      history.replaceState(null, "", "#" + data.conversation_id);
      $("#conv-bar").hidden = false;
      $("#conv-title").textContent = file.name;
      await loadSidebar().catch(() => {});
    }
    await loadAttachments();
    setStatus("attached " + data.attachment.name + (data.attachment.indexed ? " (indexed for this chat)" : ""), "");
  } catch (err) {
    showError(err);
  } finally {
    setBusy(false);
  }
}

// "name · 98 MB · Q4_1 · 2048 ctx": what llmserver's /v1/models says of a model, when it says it.
function modelLabel(m) {
  const facts = [];
  if (m.size_bytes) {
    const mb = m.size_bytes / 1e6;
    facts.push(mb >= 1000 ? (mb / 1000).toFixed(1) + " GB" : Math.max(1, Math.round(mb)) + " MB");
  }
  if (m.quantization && m.quantization !== "unknown") facts.push(m.quantization);
  if (m.context_length) facts.push(m.context_length + " ctx");
  return [m.id, ...facts].join(" · ");
}

async function loadPickers(me) {
  try {
    const models = await api("GET", "/api/models");
    const select = $("#model");
    select.replaceChildren();
    models.data.forEach((m) => { const o = el("option", "", modelLabel(m)); o.value = m.id; select.appendChild(o); });
    select.value = me.default_model;
  } catch (err) {
    setStatus("The model is unreachable right now: " + err.message + " Start llmserver " +
      "(tinyllm up) or wait for it to load, then reload this page.", "error");
  }
  try {
    const cols = await api("GET", "/api/collections");
    cols.data.forEach((c) => { const o = el("option", "", c.name); o.value = c.name; $("#collection").appendChild(o); });
  } catch (err) {
    const o = el("option", "", "(document service unavailable)");
    o.disabled = true;
    $("#collection").appendChild(o);
  }
}

// A read-only link to the open chat (the server keeps only its hash: shown once, here).
async function shareCurrent() {
  const share = await api("POST", "/api/conversations/" + encodeURIComponent(state.current) + "/shares", {});
  $("#share-url").value = location.origin + share.path;
  $("#share-panel").hidden = false;
  $("#share-url").focus();
  $("#share-url").select();
  setStatus("read-only link made: copy it now, it is not shown again", "");
}

function copyLastAnswer() {
  const answers = document.querySelectorAll(".message.assistant:not(.pending)");
  const last = answers[answers.length - 1];
  if (!last) { setStatus("no answer to copy yet", ""); return; }
  copyText(last.dataset.text).then(() => setStatus("answer copied", ""));
}

// The keyboard shortcuts, listed on /help (Ctrl or, on a Mac, Cmd).
function onShortcut(e) {
  const mod = e.ctrlKey || e.metaKey;
  const key = e.key.toLowerCase();
  const drawerOpen = document.body.classList.contains("sidebar-open");
  if (e.key === "Escape" && e.shiftKey) {
    setDrawer(false);
    $("#input").focus();
  } else if (e.key === "Escape" && drawerOpen) {
    setDrawer(false);
    $("#toggle-sidebar").focus();
  } else if (e.key === "Escape" && state.controller) {
    state.controller.abort();
  } else if (mod && e.shiftKey && key === "o") {
    startNewChat("new chat");
    $("#input").focus();
  } else if (mod && e.shiftKey && key === "c") {
    copyLastAnswer();
  } else if (mod && !e.shiftKey && key === "k") {
    if (PHONE.matches) setDrawer(true);
    $("#search").focus();
  } else {
    return;
  }
  e.preventDefault();
}

function patchCurrent(fields) {
  if (state.current) api("PATCH", "/api/conversations/" + state.current, fields).catch(showError);
}

async function init() {
  placeMenu();
  PHONE.addEventListener("change", placeMenu);
  document.addEventListener("keydown", onShortcut);
  state.me = await showUser();
  $("#agent").textContent = state.me.agent;
  await loadPickers(state.me);
  const id = location.hash.slice(1);
  await loadSidebar();
  if (id) await openConversation(id); else showEmptyState();
  $("#composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("#input").value.trim();
    if (!text || state.busy) return;
    $("#input").value = "";
    $("#command-hints").hidden = true;
    send({ message: text });
  });
  $("#input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#composer").requestSubmit(); }
  });
  $("#stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
  $("#new-chat").addEventListener("click", () => startNewChat("new chat"));
  $("#attach").addEventListener("click", () => $("#attach-file").click());
  $("#attach-file").addEventListener("change", () => {
    const file = $("#attach-file").files[0];
    $("#attach-file").value = "";
    attachFile(file);
  });
  const pane = document.querySelector(".pane");
  pane.addEventListener("dragover", (e) => { e.preventDefault(); pane.classList.add("dropping"); });
  pane.addEventListener("dragleave", () => pane.classList.remove("dropping"));
  pane.addEventListener("drop", (e) => {
    e.preventDefault();
    pane.classList.remove("dropping");
    if (e.dataTransfer && e.dataTransfer.files.length) attachFile(e.dataTransfer.files[0]);
  });
  $("#input").addEventListener("input", showHints);
  $("#input").addEventListener("blur", () => { $("#command-hints").hidden = true; });
  api("GET", "/api/commands").then((r) => { state.commands = r.data; }).catch(() => {});
  $("#search").addEventListener("input", () => {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(() => loadSidebar().catch(showError), 200);
  });
  $("#rename").addEventListener("click", async () => {
    const title = prompt("New title", $("#conv-title").textContent);
    if (!title || !title.trim()) return;
    const conv = await api("PATCH", "/api/conversations/" + state.current, { title: title.trim() });
    $("#conv-title").textContent = conv.title;
    await loadSidebar();
  });
  $("#delete").addEventListener("click", async () => {
    if (!confirm("Delete this chat?")) return;
    await api("DELETE", "/api/conversations/" + state.current);
    renderConversation(null);
    history.replaceState(null, "", "/");
    await loadSidebar();
    setStatus("chat deleted", "");
  });
  $("#share").addEventListener("click", () => shareCurrent().catch(showError));
  $("#copy-share").addEventListener("click", () => copyText($("#share-url").value)
    .then(() => setStatus("link copied", "")));
  $("#close-share").addEventListener("click", () => { $("#share-panel").hidden = true; $("#share").focus(); });
  $("#toggle-sidebar").addEventListener("click", () =>
    setDrawer(!document.body.classList.contains("sidebar-open")));
  $("#model").addEventListener("change", () => patchCurrent({ model: $("#model").value }));
  $("#collection").addEventListener("change", () => patchCurrent({ collection: $("#collection").value }));
  if ($("#status").dataset.kind !== "error") setStatus("ready", "");
  document.body.dataset.ready = "1";
}

init().catch((err) => setStatus("Error: " + err.message, "error"));
