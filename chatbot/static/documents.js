// The documents page: collections, upload with progress (XHR upload + job polling), delete.
"use strict";

function current() { return $("#collection").value; }

function sizeText(bytes) {
  if (bytes >= 1e6) return (bytes / 1e6).toFixed(1) + " MB";
  if (bytes >= 1e3) return (bytes / 1e3).toFixed(1) + " kB";
  return bytes + " B";
}

async function loadCollections(select) {
  const cols = await api("GET", "/api/collections");
  const box = $("#collection");
  box.replaceChildren();
  cols.data.forEach((c) => { const o = el("option", "", c.name); o.value = c.name; box.appendChild(o); });
  if (select) box.value = select;
  if (!cols.data.length) setStatus("No collections yet: name one and press Create, then upload files into it.", "");
  await loadDocuments();
}

let loading = 0;  // only the newest listing is shown (a slower, older one is dropped)

async function loadDocuments() {
  const tbody = $("#documents tbody");
  const mine = ++loading;
  if (!current()) { tbody.replaceChildren(); return; }
  const docs = await api("GET", "/api/collections/" + encodeURIComponent(current()) + "/documents");
  if (mine !== loading) return;
  tbody.replaceChildren();
  if (!docs.data.length) {
    emptyRow(tbody, "No documents in this collection yet: choose files above and press Upload.", 5);
  }
  docs.data.forEach((d) => {
    const row = el("tr");
    row.appendChild(el("td", "name", d.name));
    row.appendChild(el("td", "", String(d.chunks)));
    row.appendChild(el("td", "", sizeText(d.bytes)));
    row.appendChild(el("td", "", d.uploaded_at ? new Date(d.uploaded_at).toLocaleString() : ""));
    const cell = el("td");
    const button = el("button", "delete", "Delete");
    button.type = "button";
    button.addEventListener("click", async () => {
      await api("DELETE", "/api/collections/" + encodeURIComponent(current()) + "/documents/" +
                encodeURIComponent(d.id));
      setStatus("deleted " + d.name, "");
      await loadDocuments();
    });
    cell.appendChild(button);
    row.appendChild(cell);
    tbody.appendChild(row);
  });
}

// XHR, not fetch: only XHR reports upload progress.
function uploadFiles(files) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    Array.from(files).forEach((f) => form.append("files", f, f.name));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/collections/" + encodeURIComponent(current()) + "/documents");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) $("#upload-progress").value = e.loaded / e.total;
      setStatus("uploading…", "generating");
    };
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status >= 400) reject(envelopeError(xhr.status, data)); else resolve(data);
    };
    xhr.onerror = () => reject(new Error("The upload failed: the chatbot is unreachable."));
    xhr.send(form);
  });
}

async function pollJob(job) {
  for (;;) {
    $("#job-progress").value = job.progress || 0;
    setStatus("indexing: " + Math.round((job.progress || 0) * 100) + "%", "generating");
    if (job.status === "done") return job;
    if (job.status === "failed") throw envelopeError(422, { error: job.error || {} });
    await new Promise((r) => setTimeout(r, 400));
    job = await api("GET", "/api/jobs/" + encodeURIComponent(job.id));
  }
}

async function onUpload(e) {
  e.preventDefault();
  const files = $("#files").files;
  if (!files.length || !current()) { setStatus("Pick a collection and files first.", "error"); return; }
  $("#upload-button").disabled = true;
  $("#upload-progress").value = 0;
  $("#job-progress").value = 0;
  try {
    const answer = await uploadFiles(files);
    $("#upload-progress").value = 1;
    const job = answer.job ? await pollJob(answer.job) : { documents: answer.documents };
    $("#job-progress").value = 1;
    const names = (job.documents || []).map((d) => d.name + " (" + d.chunks + " chunks)");
    setStatus("uploaded " + names.join(", "), "done");
    $("#files").value = "";
  } catch (err) {
    setStatus("Upload failed: " + err.message, "error");
  } finally {
    $("#upload-button").disabled = false;
    await loadDocuments().catch(() => {});
  }
}

async function init() {
  $("#collection").addEventListener("change", () => loadDocuments().catch(showError));
  $("#upload").addEventListener("submit", onUpload);
  $("#new-collection").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("#collection-name").value.trim();
    if (!name) return;
    try {
      await api("POST", "/api/collections", { name });
      $("#collection-name").value = "";
      await loadCollections(name);
      setStatus("created " + name, "");
    } catch (err) { showError(err); }
  });
  $("#delete-collection").addEventListener("click", async () => {
    if (!current() || !confirm("Delete collection " + current() + " and its documents?")) return;
    try { await api("DELETE", "/api/collections/" + encodeURIComponent(current())); await loadCollections(); }
    catch (err) { showError(err); }
  });
  await loadCollections();
}

function showError(err) {
  const down = err.status === 503 || err.status === 504;
  setStatus(down ? "The document service is unavailable: " + err.message + " Start rag " +
    "(tinyllm up), then reload this page." : "Error: " + err.message, "error");
}

init().catch(showError).finally(() => { document.body.dataset.ready = "1"; });
