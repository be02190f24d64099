// Helpers shared by the chat and documents pages (no inline script: CSP forbids it).
"use strict";

const $ = (selector) => document.querySelector(selector);

function setStatus(text, kind) {
  const el = $("#status");
  el.textContent = text;
  el.className = "status" + (kind ? " " + kind : "");
  el.dataset.kind = kind || "";
}

// Fetch JSON; throw an Error carrying the envelope's message/code/status on failure.
async function api(method, url, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({}));
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
