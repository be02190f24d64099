// A shared conversation, read-only: the chat page's rendering and sanitising (render.js), no
// box to write in, nothing but the questions and answers.
"use strict";

const NOTES = { stopped: "stopped", repetition: "stopped: the answer started repeating itself",
  interrupted: "interrupted", error: "failed", streaming: "still being written" };

function showMessage(m, agent) {
  const wrap = el("article", "message " + m.role);
  wrap.appendChild(el("div", "role", m.role === "user" ? "User" : agent));
  const body = el("div", "body");
  if (m.role === "user") body.textContent = m.content; else renderMarkdown(body, m.content);
  wrap.appendChild(body);
  if (m.sources.length) {
    const list = el("ol", "sources");
    list.setAttribute("aria-label", "Sources");
    m.sources.forEach((s) => list.appendChild(el("li", "", "[" + s.n + "] " + s.document +
      (s.page !== null && s.page !== undefined ? ", page " + s.page : ""))));
    wrap.appendChild(list);
  }
  if (NOTES[m.status]) addNotice(wrap, NOTES[m.status], "muted");
  $("#messages").appendChild(wrap);
}

async function init() {
  const token = location.pathname.split("/")[2] || "";
  try {
    const conv = await api("GET", "/s/" + encodeURIComponent(token) + "/data");
    document.title = conv.title + " · shared chat";
    $("#shared-title").textContent = conv.title;
    conv.messages.forEach((m) => showMessage(m, conv.agent));
    setStatus(conv.messages.length ? "read-only" : "This chat has no messages yet.", "");
  } catch (err) {
    $("#shared-title").textContent = "Shared chat not found";
    setStatus(err.status === 404 ? "This link was revoked by its owner or is incomplete: ask " +
      "them for a new one." : "Error: " + err.message + " Reload to try again.", "error");
  }
}

init().finally(() => { document.body.dataset.ready = "1"; });
