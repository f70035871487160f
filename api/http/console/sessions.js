// Sessions: every session on record (live and cold), searchable, refreshed every 3 s.

import { get } from "./api.js";
import { fmtAgo, fmtNum, fmtTime, h } from "./format.js";
import { rovingList } from "./keys.js";

const REFRESH_MS = 3000;
const SHOWN = 200; // rows in the DOM at once; "show more" adds another page

/** Merges /api/sessions/history (every session) with /api/sessions (live detail). */
export function mergeSessions(history, live) {
  const liveById = new Map(live.map((s) => [s.session_id, s]));
  const rows = history.map((s) => {
    const l = liveById.get(s.session_id) || {};
    return {
      id: s.session_id,
      live: Boolean(s.live),
      queen: l.queen_name || s.queen_id || "",
      colony: l.colony_name || l.colony_id || s.agent_name || "",
      agentPath: l.agent_path || s.agent_path || "",
      events: s.event_count,
      lastActive: s.last_active_at,
      runner: s.runner_node || "",
    };
  });
  for (const l of live) {
    if (!rows.some((r) => r.id === l.session_id)) {
      rows.push({ id: l.session_id, live: true, queen: l.queen_name || l.queen_id || "",
        colony: l.colony_name || "", agentPath: l.agent_path || "", events: null,
        lastActive: l.loaded_at, runner: "" });
    }
  }
  return rows;
}

export function matches(row, query, state) {
  if (state === "live" && !row.live) return false;
  if (state === "cold" && row.live) return false;
  if (!query) return true;
  const hay = `${row.id} ${row.queen} ${row.colony} ${row.agentPath} ${row.runner}`.toLowerCase();
  return query.toLowerCase().split(/\s+/).every((word) => hay.includes(word));
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
  let limit = SHOWN;
  let signature = "";

  function render() {
    const q = search.value.trim();
    sessionStorage.setItem("hivelog.sessions.filter", JSON.stringify({ q, state: state.value }));
    const found = rows.filter((r) => matches(r, q, state.value));
    const shown = found.slice(0, limit);
    const sig = JSON.stringify([shown, found.length]);
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
      list.append(h("li", { class: "marker" }, rows.length ? "No session matches." : "No sessions yet."));
    }
    counter.textContent = `${fmtNum(found.length)} of ${fmtNum(rows.length)}`;
    more.hidden = found.length <= limit;
    const again = focusedId && list.querySelector(`a.srow[data-id="${CSS.escape(focusedId)}"]`);
    roving.settle(again || null);
    if (again) again.focus();
  }

  async function refresh() {
    try {
      const [history, live] = await Promise.all([
        get("/api/sessions/history", { signal: ctx.signal }),
        get("/api/sessions", { signal: ctx.signal }),
      ]);
      rows = mergeSessions(history.sessions, live.sessions);
      error.hidden = true;
      render();
    } catch (err) {
      if (ctx.signal.aborted) return;
      error.textContent = `Could not load sessions: ${err.message}`;
      error.hidden = false;
    }
  }

  search.addEventListener("input", () => { limit = SHOWN; render(); });
  state.addEventListener("change", () => { limit = SHOWN; render(); });
  more.addEventListener("click", () => { limit += SHOWN; render(); });
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
