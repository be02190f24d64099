// The colour scheme: the system's (prefers-color-scheme) unless this browser picked one with
// the "Dark mode" button (kept in localStorage). Loaded in <head>, after the stylesheets, so
// the page never flashes the other scheme.
"use strict";

(function () {
  const KEY = "tinyllm-theme";
  const root = document.documentElement;
  const system = window.matchMedia("(prefers-color-scheme: dark)");

  function picked() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }  // storage blocked
  }

  function shown() { return root.dataset.theme || (system.matches ? "dark" : "light"); }

  function apply(theme) {
    if (theme === "light" || theme === "dark") root.dataset.theme = theme;
    else delete root.dataset.theme;
    // The highlight.js theme of each scheme (<link data-scheme>): the picked one wins.
    document.querySelectorAll("link[data-scheme]").forEach((link) => {
      const scheme = link.dataset.scheme;
      link.media = root.dataset.theme ? (root.dataset.theme === scheme ? "all" : "not all")
        : "(prefers-color-scheme: " + scheme + ")";
    });
    const toggle = document.getElementById("theme-toggle");
    if (toggle) toggle.setAttribute("aria-pressed", String(shown() === "dark"));
  }

  apply(picked());
  system.addEventListener("change", () => apply(picked()));
  document.addEventListener("DOMContentLoaded", () => {
    apply(picked());
    const toggle = document.getElementById("theme-toggle");
    if (!toggle) return;
    toggle.addEventListener("click", () => {
      const next = shown() === "dark" ? "light" : "dark";
      try { localStorage.setItem(KEY, next); } catch (e) { /* this page only */ }
      apply(next);
    });
  });
})();
