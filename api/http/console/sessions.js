// Sessions: every session on record (live and cold), searched and cut on the server
// (GET /api/admin/sessions), refreshed every 3 s.

import { get } from "./api.js";
import { fmtAgo, fmtNum, fmtTime, h } from "./format.js";
import { rovingList } from "./keys.js";

const REFRESH_MS = 3000;
const SHOWN = 200; // rows in the DOM at once; "show more" adds another page
const MAX_SHOWN = 2000; // the route's own bound on `limit`
const SEARCH_DEBOUNCE_MS = 200;

/** A row of /api/admin/sessions as the list draws it. */
export function toRow(s) {
  return {
    id: s.session_id,
    live: Boolean(s.live),
    queen: s.queen || "",
    colony: s.colony || "",
    agentPath: s.agent_path || "",
    events: s.event_count,
    lastActive: s.last_active_at,
    runner: s.runner_node || "",
  };
}

export function mountSessions(root, _params, ctx) {
  const saved = JSON.parse(sessionStorage.getItem("hivelog.sessions.filter") || "{}");
  const search = h("input", { type: "search", class: "grow", placeholder: "Search id, queen, colony, agent path, node",
    "aria-label": "Search sessions", value: saved.q || "" });
  const state = h("select", { "aria-label": "Live or cold" },
    h("option", { value: "" }, "Live and cold"), h("option", { value: "live" }, "Live"),
    h("option", { value: "cold" }, "Cold"));
  state.value = saved.state || "";
  const counter = h("span", { class: "muted", role: "status" });
  const list = h("ul", { class: "list", id: "session-list", "aria-label": "Sessions" });
  const more = h("button", { type: "button", hidden: true }, "Show more");
  const error = h("p", { class: "error", role: "alert", hidden: true });
  root.replaceChildren(
    h("h1", {}, "Sessions"),
    h("div", { class: "toolbar" }, search, state, counter),
    error,
    list,
    h("div", { class: "pager" }, more),
  );
  const roving = rovingList(list, "a.srow");
  let rows = [];
  let matched = 0;
  let total = 0;
  let limit = SHOWN;
  let signature = "";
  let asked = 0; // bumps on every request, so a stale answer is ignored

  function render() {
    const shown = rows;
    const sig = JSON.stringify([shown, matched, total]);
    if (sig === signature) return; // nothing changed: keep the DOM (and focus) as it is
    signature = sig;
    const focusedId = document.activeElement?.closest?.("#session-list") ? document.activeElement.dataset.id : null;
    const now = Date.now();
    list.replaceChildren(
      h("li", { class: "shead", "aria-hidden": "true" },
        h("span", {}, "Session"), h("span", {}, "State"), h("span", {}, "Queen"),
        h("span", {}, "Colony / agent path"), h("span", { class: "num" }, "Events"),
        h("span", {}, "Last activity"), h("span", {}, "Runner node")),
      ...shown.map((r) => h("li", {},
        h("a", { class: "srow", href: `#/session/${encodeURIComponent(r.id)}`, "data-id": r.id, tabindex: -1 },
          h("span", { class: "sid mono", title: r.id }, r.id),
          h("span", { class: "state" }, h("span", { class: `badge ${r.live ? "live" : "cold"}` }, r.live ? "live" : "cold")),
          h("span", { title: r.queen }, h("span", { class: "lbl" }, "queen "), r.queen || "—"),
          h("span", { title: r.agentPath }, h("span", { class: "lbl" }, "colony "), r.colony || "—",
            r.agentPath ? h("span", { class: "muted" }, ` · ${r.agentPath}`) : ""),
          h("span", { class: "num" }, h("span", { class: "lbl" }, "events "), fmtNum(r.events)),
          h("span", { title: fmtTime(r.lastActive) }, h("span", { class: "lbl" }, "active "), fmtAgo(r.lastActive, now)),
          h("span", { class: "mono" }, h("span", { class: "lbl" }, "node "), r.runner || "—")))),
    );
    if (!shown.length) {
      list.append(h("li", { class: "marker" }, total ? "No session matches." : "No sessions yet."));
    }
    counter.textContent = `${fmtNum(matched)} of ${fmtNum(total)}`;
    more.hidden = matched <= shown.length || limit >= MAX_SHOWN;
    const again = focusedId && list.querySelector(`a.srow[data-id="${CSS.escape(focusedId)}"]`);
    roving.settle(again || null);
    if (again) again.focus();
  }

  async function refresh() {
    const q = search.value.trim().slice(0, 256);
    sessionStorage.setItem("hivelog.sessions.filter", JSON.stringify({ q, state: state.value }));
    const params = new URLSearchParams({ q, state: state.value, limit: String(limit) });
    const mine = ++asked;
    try {
      const body = await get(`/api/admin/sessions?${params}`, { signal: ctx.signal });
      if (mine !== asked) return;
      rows = body.sessions.map(toRow);
      matched = body.matched;
      total = body.total;
      error.hidden = true;
      render();
    } catch (err) {
      if (ctx.signal.aborted) return;
      error.textContent = `Could not load sessions: ${err.message}`;
      error.hidden = false;
    }
  }

  let debounce = null;
  search.addEventListener("input", () => {
    limit = SHOWN;
    clearTimeout(debounce);
    debounce = setTimeout(refresh, SEARCH_DEBOUNCE_MS);
  });
  ctx.signal.addEventListener("abort", () => clearTimeout(debounce), { once: true });
  state.addEventListener("change", () => { limit = SHOWN; refresh(); });
  more.addEventListener("click", () => { limit = Math.min(limit + SHOWN, MAX_SHOWN); refresh(); });
  search.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      list.querySelector("a.srow")?.focus();
    }
  });
  refresh();
  ctx.every(REFRESH_MS, refresh);
  search.focus({ preventScroll: true });
}
