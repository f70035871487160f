// The header shared by a session's views: id, state, queen, colony, and the tabs.

import { get } from "./api.js";
import { fmtTime, h } from "./format.js";

const MIN_REFRESH_MS = 2000;

export function sessionHeader(id, active, ctx) {
  const facts = h("p", { class: "counts" }, h("span", { class: "muted" }, "…"));
  const base = `#/session/${encodeURIComponent(id)}`;
  const tab = (name, href, label) =>
    h("a", { href, "aria-current": active === name ? "page" : null }, label);
  const el = h("div", {},
    h("p", { class: "muted" }, h("a", { href: "#/sessions" }, "← Sessions")),
    h("h1", { class: "mono" }, id),
    facts,
    h("nav", { class: "tabs", "aria-label": "Session views" },
      tab("timeline", base, "Timeline"), tab("triggers", `${base}/triggers`, "Triggers")));
  let last = 0;
  let timer = null;

  async function load() {
    last = Date.now();
    try {
      const s = await get(`/api/sessions/${encodeURIComponent(id)}`, { signal: ctx.signal });
      const live = s.live !== false && !s.cold;
      facts.replaceChildren(...[
        h("span", {}, h("span", { class: `badge ${live ? "live" : "cold"}` }, live ? "live" : "cold")),
        h("span", {}, "queen ", h("b", {}, s.queen_name || s.queen_id || "—")),
        h("span", {}, "colony ", h("b", {}, s.colony_name || s.agent_name || s.colony_id || "—")),
        s.queen_phase ? h("span", {}, "phase ", h("b", {}, s.queen_phase)) : null,
        s.created_at ? h("span", {}, "created ", fmtTime(s.created_at)) : null,
      ].filter(Boolean));
    } catch (err) {
      if (!ctx.signal.aborted) facts.replaceChildren(h("span", { class: "error" }, err.message));
    }
  }

  /** Reload the facts, at most every MIN_REFRESH_MS however often it is asked. */
  function refresh() {
    if (timer) return;
    const wait = Math.max(0, last + MIN_REFRESH_MS - Date.now());
    timer = setTimeout(() => { timer = null; if (!ctx.signal.aborted) load(); }, wait);
  }

  load();
  return { el, refresh };
}
