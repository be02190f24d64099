// The login page: first-run admin setup, log in, sign up when the admin allows it.
"use strict";

let mode = "login";

function setMode(next) {
  mode = next;
  $("#login-title").textContent = { setup: "Create the admin account", login: "Log in",
    signup: "Create an account" }[next];
  $("#submit").textContent = next === "login" ? "Log in" : "Create account";
  $("#setup-hint").hidden = next !== "setup";
  $("#password").autocomplete = next === "login" ? "current-password" : "new-password";
}

async function init() {
  const st = await api("GET", "/api/auth/state");
  if (!st.accounts) { location.href = "/"; return; }
  setMode(st.setup_needed ? "setup" : "login");
  if (st.signup && !st.setup_needed) {
    $("#signup").hidden = false;
    $("#signup").addEventListener("click", () => setMode(mode === "signup" ? "login" : "signup"));
  }
  $("#login").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { username: $("#username").value.trim(), password: $("#password").value };
    try {
      await api("POST", "/api/auth/" + mode, body);
      location.href = "/";
    } catch (err) {
      setStatus(err.message, "error");
    }
  });
  $("#submit").disabled = false;
}

init().catch((err) => setStatus("Error: " + err.message, "error"));
