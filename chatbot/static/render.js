// Rendering and streaming helpers of the chat page.
"use strict";

// Model output and user text both pass through DOMPurify; links may not run script.
function renderMarkdown(target, text) {
  const html = marked.parse(text, { gfm: true, breaks: true });
  target.innerHTML = DOMPurify.sanitize(html, { FORBID_TAGS: ["style", "form", "input"] });
  target.querySelectorAll("pre code").forEach((code) => {
    hljs.highlightElement(code);
    const copy = button("Copy code", "copy-code", () => copyText(code.textContent)
      .then(() => setStatus("code copied", "")));
    code.parentElement.appendChild(copy);
  });
  target.querySelectorAll("a").forEach((a) => { a.target = "_blank"; a.rel = "noopener noreferrer"; });
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

function showSources(wrap, info) {
  if (!info.sources || !info.sources.length) return;
  const list = el("ol", "sources");
  info.sources.forEach((s) => {
    const cited = s.cited === true || (info.cited || []).includes(s.n);
    const item = el("li", cited ? "cited" : "");
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

function addNotice(wrap, text, kind) {
  const note = el("div", "notice " + (kind || ""), text);
  (wrap || $("#messages")).appendChild(note);
  return note;
}
