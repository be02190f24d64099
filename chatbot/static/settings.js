// The settings page: your API keys; for the admin, users and sign-up.
"use strict";

function when(t) { return new Date(t * 1000).toLocaleString(); }

async function loadKeys() {
  const keys = await api("GET", "/api/keys");
  const tbody = $("#keys tbody");
  tbody.replaceChildren();
  if (!keys.data.length) {
    emptyRow(tbody, "No API keys yet: name one above and press Create key.", 4);
  }
  keys.data.forEach((k) => {
    const row = el("tr");
    row.appendChild(el("td", "name", k.name));
    row.appendChild(el("td", "", k.prefix + "…"));
    row.appendChild(el("td", "", when(k.created_at)));
    const cell = el("td");
    cell.appendChild(button("Revoke", "delete", async () => {
      await api("DELETE", "/api/keys/" + k.id);
      await loadKeys();
  await loadShares();
    }));
    row.appendChild(cell);
    tbody.appendChild(row);
  });
}

async function loadShares() {
  const list = await api("GET", "/api/shares");
  const tbody = $("#share-list tbody");
  tbody.replaceChildren();
  list.data.forEach((sh) => {
    const row = el("tr");
    row.dataset.id = sh.id;
    const cell = el("td", "name");
    const link = el("a", "", sh.title);
    link.href = "/#" + sh.conversation_id;
    cell.appendChild(link);
    row.appendChild(cell);
    row.appendChild(el("td", "", when(sh.created_at)));
    const actions = el("td");
    const revoke = button("Revoke", "delete", async () => {
      await api("DELETE", "/api/shares/" + sh.id);
      setStatus("link to " + sh.title + " revoked", "");
      await loadShares();
    });
    revoke.setAttribute("aria-label", "Revoke the link to " + sh.title);
    actions.appendChild(revoke);
    row.appendChild(actions);
    tbody.appendChild(row);
  });
  $("#share-list").hidden = !list.data.length;
  $("#no-shares").hidden = list.data.length > 0;
}

async function loadUsers(me) {
  const list = await api("GET", "/api/admin/users");
  const tbody = $("#users tbody");
  tbody.replaceChildren();
  list.data.forEach((u) => {
    const row = el("tr");
    row.dataset.username = u.username;
    row.appendChild(el("td", "name", u.username));
    row.appendChild(el("td", "", u.is_admin ? "admin" : "user"));
    row.appendChild(el("td", "state", u.disabled ? "disabled" : "active"));
    const cell = el("td");
    if (u.id !== me.user.id) {
      cell.appendChild(button(u.disabled ? "Enable" : "Disable", "toggle", async () => {
        await api("PATCH", "/api/admin/users/" + u.id, { disabled: !u.disabled });
        await loadUsers(me);
      }));
      cell.appendChild(button("Delete", "delete", async () => {
        if (!confirm("Delete " + u.username + " and all their chats?")) return;
        await api("DELETE", "/api/admin/users/" + u.id);
        await loadUsers(me);
      }));
    }
    row.appendChild(cell);
    tbody.appendChild(row);
  });
}

// The admin's prompts: a text box each, its placeholders and default, Save and Reset.
async function loadPrompts() {
  const list = await api("GET", "/api/admin/prompts");
  const box = $("#prompt-list");
  box.replaceChildren();
  list.data.forEach((p) => {
    const form = el("form", "prompt");
    form.dataset.name = p.name;
    form.appendChild(el("h3", "", p.title + (p.edited ? " (edited)" : " (default)")));
    form.appendChild(el("p", "placeholders", "Placeholders: " + p.placeholders.join(" ")));
    const area = el("textarea", "prompt-text");
    area.value = p.text;
    area.rows = 4;
    area.setAttribute("aria-label", p.title);
    form.appendChild(area);
    const details = el("details", "default");
    details.appendChild(el("summary", "", "Default"));
    details.appendChild(el("pre", "", p.default));
    form.appendChild(details);
    form.appendChild(button("Save", "save", async () => {
      try {
        await api("PUT", "/api/admin/prompts/" + p.name, { text: area.value });
        setStatus(p.title + " saved", "");
        await loadPrompts();
      } catch (err) { setStatus("Error: " + err.message, "error"); }
    }));
    form.appendChild(button("Reset to default", "reset", async () => {
      await api("DELETE", "/api/admin/prompts/" + p.name);
      setStatus(p.title + " reset", "");
      await loadPrompts();
    }));
    form.addEventListener("submit", (e) => e.preventDefault());
    box.appendChild(form);
  });
}

async function init() {
  const me = await showUser();
  $("#base-url").textContent = location.origin + "/v1";
  await loadKeys();
  await loadShares();
  $("#new-key").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const key = await api("POST", "/api/keys", { name: $("#key-name").value.trim() });
      $("#new-key-value").hidden = false;
      $("#new-key-value").textContent = "Your new key (shown only now): " + key.key;
      $("#key-name").value = "";
      await loadKeys();
  await loadShares();
    } catch (err) { setStatus("Error: " + err.message, "error"); }
  });
  if (me.user.is_admin) {
    $("#prompts").hidden = false;
    await loadPrompts();
  }
  if (!me.user.is_admin || !me.accounts) return;
  $("#admin").hidden = false;
  const settings = await api("GET", "/api/admin/settings");
  $("#allow-signup").checked = settings.allow_signup;
  $("#allow-signup").addEventListener("change", () =>
    api("PATCH", "/api/admin/settings", { allow_signup: $("#allow-signup").checked }));
  await loadUsers(me);
  $("#new-user").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", "/api/admin/users", { username: $("#new-username").value.trim(),
        password: $("#new-password").value, is_admin: $("#new-admin").checked });
      $("#new-username").value = ""; $("#new-password").value = "";
      setStatus("user added", "");
      await loadUsers(me);
    } catch (err) { setStatus("Error: " + err.message, "error"); }
  });
}

init().catch((err) => setStatus("Error: " + err.message, "error"))
  .finally(() => { document.body.dataset.ready = "1"; });
