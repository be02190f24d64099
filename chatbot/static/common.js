// Helpers shared by every page (no inline script: CSP forbids it).
"use strict";

const $ = (selector) => document.querySelector(selector);

function setStatus(text, kind) {
  const el = $("#status");
  el.textContent = text;
  el.className = "status" + (kind ? " " + kind : "");
  el.dataset.kind = kind || "";
}

// Fetch JSON; throw an Error carrying the envelope's message/code/status on failure.
// A 401 on a page that needs a login goes to the login page.
async function api(method, url, body) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && !url.startsWith("/api/auth/")) {
    location.href = "/login";
  }
  if (!response.ok) throw envelopeError(response.status, data);
  return data;
}

function envelopeError(status, data) {
  const err = (data && data.error) || {};
  const error = new Error(err.message || "Request failed (" + status + ").");
  error.code = err.code;
  error.status = status;
  return error;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A table's one row saying it is empty and what to do next.
function emptyRow(tbody, text, columns) {
  const row = el("tr", "empty");
  const cell = el("td", "", text);
  cell.colSpan = columns;
  row.appendChild(cell);
  tbody.appendChild(row);
}

function button(text, className, onClick) {
  const b = el("button", className, text);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

// Who is logged in, shown in the header with a logout button (accounts only).
async function showUser() {
  const me = await api("GET", "/api/me");
  if (me.accounts) {
    $("#username").textContent = me.user.username;
    $("#logout").hidden = false;
    $("#logout").addEventListener("click", async () => {
      await api("POST", "/api/auth/logout");
      location.href = "/login";
    });
  }
  return me;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {  // no clipboard API (an insecure origin): the old way
    const area = el("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}
