// The console's entry point: hash routes, the token dialog, and each view's
// lifetime (a view gets a context whose signal aborts its fetches, streams and
// timers when the reader leaves it).

import { setTokenAsker } from "./api.js";
import { mountLog } from "./log.js";
import { mountSession } from "./session.js";
import { mountSessions } from "./sessions.js";
import { mountTriggers } from "./triggers.js";

const ROUTES = [
  [/^#\/session\/([^/]+)\/triggers$/, mountTriggers, "sessions"],
  [/^#\/session\/([^/]+)$/, mountSession, "sessions"],
  [/^#\/log$/, mountLog, "log"],
  [/^#\/sessions$/, mountSessions, "sessions"],
];

const main = document.getElementById("main");
let current = null;

function context() {
  const controller = new AbortController();
  const timers = [];
  return {
    signal: controller.signal,
    /** Runs `fn` every `ms` until the view is left (never two runs at once). */
    every(ms, fn) {
      let running = false;
      timers.push(setInterval(async () => {
        if (running || document.hidden) return;
        running = true;
        try { await fn(); } finally { running = false; }
      }, ms));
    },
    close() {
      controller.abort();
      timers.forEach(clearInterval);
    },
  };
}

function route() {
  const hash = location.hash || "#/sessions";
  let found = null;
  for (const [pattern, mount, nav] of ROUTES) {
    const m = hash.match(pattern);
    if (m) { found = { mount, nav, params: m[1] ? { id: decodeURIComponent(m[1]) } : {} }; break; }
  }
  if (!found) { location.replace("#/sessions"); return; }
  current?.close();
  current = context();
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === found.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  window.scrollTo({ top: 0 });
  found.mount(main, found.params, current);
}

// The token dialog: shown on the first 401, answered once per tab.
const dialog = document.getElementById("token-dialog");
const form = document.getElementById("token-form");
const input = document.getElementById("token-input");
const tokenError = document.getElementById("token-error");
dialog.addEventListener("cancel", (event) => event.preventDefault()); // Escape cannot skip it
setTokenAsker((wrong) => new Promise((resolve) => {
  tokenError.hidden = !wrong;
  tokenError.textContent = wrong ? "That token was refused; try again." : "";
  input.value = "";
  form.addEventListener("submit", () => resolve(input.value.trim()), { once: true });
  if (!dialog.open) dialog.showModal();
  input.focus();
}));

const conn = document.getElementById("conn");
addEventListener("offline", () => { conn.textContent = "offline"; });
addEventListener("online", () => { conn.textContent = ""; });
addEventListener("hashchange", route);
route();
