// A session's triggers: schedule in words and in the trigger's zone, next fire,
// a chart of past fires (manual, catch-up, skipped and missed marked) and the
// run / activate / deactivate buttons, which call the existing routes.

import { follow, get, post } from "./api.js";
import { fmtAgo, fmtNum, fmtTime, h, s, scheduleWords, toMs } from "./format.js";
import { sessionHeader } from "./header.js";

const FIRE_TYPES = "trigger_fired,trigger_fire_skipped,missed_triggers";
const WATCH_TYPES = `${FIRE_TYPES},trigger_activated,trigger_deactivated,trigger_updated,trigger_available,trigger_removed`;
const HISTORY_LIMIT = 2000; // the newest fires charted
const REFRESH_MS = 5000;
const H = 64;

const COLORS = { scheduled: "#1a7f37", manual: "#1f5fbf", catchup: "#8250df", webhook: "#0a7ea4", skipped: "#6e7781", missed: "#cf222e" };

/** Each trigger's marks from its events: {at (ms), kind, title, until?}; pure. */
export function fireMarks(events) {
  const byTrigger = new Map();
  for (const ev of events) {
    const d = ev.data || {};
    if (!d.trigger_id) continue;
    const at = toMs(ev.type === "trigger_fired" ? d.last_fired_at ?? ev.timestamp : d.scheduled_at ?? ev.timestamp);
    let mark;
    if (ev.type === "trigger_fired") {
      const kind = d.forced ? "manual" : d.catch_up ? "catchup" : d.webhook ? "webhook" : "scheduled";
      mark = { at, kind, title: `${kind} fire ${fmtTime(at)} (v${ev.version})` };
    } else if (ev.type === "trigger_fire_skipped") {
      mark = { at, kind: "skipped", title: `skipped ${fmtTime(at)}: ${d.reason || "?"}` };
    } else {
      const from = toMs(d.first_missed_at) ?? at;
      const until = toMs(d.last_missed_at) ?? from;
      mark = { at: from, until, kind: "missed",
        title: `${d.count ?? "?"} missed ${fmtTime(from)} – ${fmtTime(until)} (${d.decision || ""}, ${d.reason || ""})` };
    }
    if (!byTrigger.has(d.trigger_id)) byTrigger.set(d.trigger_id, []);
    byTrigger.get(d.trigger_id).push(mark);
  }
  return byTrigger;
}

/** An SVG as wide as its box in CSS pixels (`width`), so labels are never stretched. */
function chart(marks, now, width) {
  const W = Math.max(240, Math.round(width));
  const times = marks.flatMap((m) => [m.at, m.until ?? m.at]).filter((t) => t !== null);
  // from the earliest mark (at least the last minute; the last hour with none) to now
  const earliest = times.length ? Math.min(...times) : now - 3600_000;
  const span = Math.max(now - earliest, 60_000) * 1.04;
  const start = now - span;
  const x = (t) => 8 + ((t - start) / span) * (W - 16);
  const lanes = { fires: 18, skipped: 36, missed: 50 };
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${marks.length} fires, skips and misses over time` });
  for (const [name, y] of Object.entries(lanes)) {
    svg.append(s("line", { x1: 0, x2: W, y1: y, y2: y, stroke: "#e5e8ec" }));
    svg.append(s("text", { x: 4, y: y - 3, "font-size": 10, fill: "#8c959f" }, name));
  }
  for (const m of marks) {
    if (m.at === null) continue;
    const color = COLORS[m.kind];
    let shape;
    if (m.kind === "missed") {
      const x1 = x(m.at);
      shape = s("rect", { x: x1 - 1, y: lanes.missed - 4, width: Math.max(x(m.until) - x1, 2) + 2, height: 8, fill: color, opacity: 0.8 });
    } else if (m.kind === "skipped") {
      const cx = x(m.at);
      const y = lanes.skipped;
      shape = s("path", { d: `M${cx - 3} ${y - 3}L${cx + 3} ${y + 3}M${cx - 3} ${y + 3}L${cx + 3} ${y - 3}`, stroke: color, "stroke-width": 1.5 });
    } else if (m.kind === "manual") {
      const cx = x(m.at);
      const y = lanes.fires;
      shape = s("path", { d: `M${cx} ${y - 5}L${cx + 4} ${y}L${cx} ${y + 5}L${cx - 4} ${y}Z`, fill: color });
    } else {
      shape = s("circle", { cx: x(m.at), cy: lanes.fires, r: 3.2, fill: color });
    }
    shape.append(s("title", {}, m.title));
    svg.append(shape);
  }
  svg.append(s("text", { x: 4, y: H - 2, "font-size": 10, fill: "#57606a" }, fmtTime(start)));
  svg.append(s("text", { x: W - 4, y: H - 2, "font-size": 10, fill: "#57606a", "text-anchor": "end" }, "now"));
  return svg;
}

function legend() {
  const item = (kind, label) => h("span", {}, h("i", { style: `background:${COLORS[kind]}` }), label);
  return h("div", { class: "legend" }, item("scheduled", "scheduled"), item("manual", "manual (run)"),
    item("catchup", "catch-up"), item("webhook", "webhook"), item("skipped", "skipped"), item("missed", "missed"));
}

export function mountTriggers(root, params, ctx) {
  const id = params.id;
  const header = sessionHeader(id, "triggers", ctx);
  const status = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const holder = h("div", { id: "triggers" });
  root.replaceChildren(header.el, status, holder);
  const base = `/api/sessions/${encodeURIComponent(id)}`;
  let busy = false;
  let again = null;

  async function act(trigger, action, button) {
    button.disabled = true;
    try {
      const r = await post(`${base}/triggers/${encodeURIComponent(trigger.id)}/${action}`, undefined, { signal: ctx.signal });
      status.textContent = `${trigger.name || trigger.id}: ${r.status}`;
      status.className = "ok";
    } catch (err) {
      status.textContent = `${trigger.name || trigger.id}: ${err.message}`;
      status.className = "error";
    }
    await load();
  }

  function card(t, marks, live, now, width) {
    const tz = t.timezone || (t.trigger_config || {}).timezone || "UTC";
    const next = t.next_fire_at
      ? `${fmtTime(t.next_fire_at, tz)} ${tz} (${fmtAgo(t.next_fire_at, now)})`
      : t.active && live ? "—" : "not scheduled (inactive or session stopped)";
    const run = h("button", { type: "button", class: "primary", "data-action": "run" }, "Run now");
    const activate = h("button", { type: "button", "data-action": "activate", disabled: t.active }, "Activate");
    const deactivate = h("button", { type: "button", "data-action": "deactivate", disabled: !t.active }, "Deactivate");
    run.addEventListener("click", () => act(t, "run", run));
    activate.addEventListener("click", () => act(t, "activate", activate));
    deactivate.addEventListener("click", () => act(t, "deactivate", deactivate));
    return h("section", { class: "panel trig-card", "data-trigger": t.id, "aria-label": `Trigger ${t.name || t.id}` },
      h("div", {},
        h("h2", {}, t.name || t.id, " ", h("span", { class: `badge ${t.active ? "live" : "cold"}` }, t.active ? "active" : "inactive")),
        h("dl", {},
          h("dt", {}, "schedule"), h("dd", {}, scheduleWords(t), t.trigger_type === "timer" ? h("span", { class: "muted" }, ` (${tz})`) : ""),
          h("dt", {}, "next fire"), h("dd", { "data-role": "next" }, next),
          h("dt", {}, "fires"), h("dd", { "data-role": "fire-count" }, fmtNum(t.fire_count ?? 0)),
          h("dt", {}, "last fired"), h("dd", {}, t.last_fired_at ? `${fmtTime(t.last_fired_at, tz)} (${fmtAgo(t.last_fired_at, now)})` : "never"),
          h("dt", {}, "skipped / missed"), h("dd", {}, `${fmtNum(t.skipped_count ?? 0)} / ${fmtNum(t.missed_count ?? 0)}`),
          t.misfire ? [h("dt", {}, "misfire"), h("dd", {}, `${t.misfire}, grace ${t.misfire_grace_seconds} s`)] : null,
          h("dt", {}, "task"), h("dd", {}, t.task || "—"))),
      h("div", { class: "trig-actions" }, run, activate, deactivate),
      h("div", { class: "chart" }, chart(marks, now, width), legend()));
  }

  let marks = new Map();

  /** Reloads the triggers; with `fires`, also the chart's events (a typed read walks
   * the session's stream, so it runs on load and on trigger events, not on the timer). */
  async function load({ fires = true } = {}) {
    if (busy) { // one load at a time; a request meanwhile runs once more after it
      again = again || { fires: false };
      again.fires ||= fires;
      return;
    }
    busy = true;
    try {
      const [list, history] = await Promise.all([
        get(`${base}/triggers`, { signal: ctx.signal }),
        fires ? get(`${base}/events/history?types=${FIRE_TYPES}&limit=${HISTORY_LIMIT}`, { signal: ctx.signal }) : null,
      ]);
      if (history) marks = fireMarks(history.events);
      const now = Date.now();
      const focused = document.activeElement?.closest?.("[data-trigger]") ? [document.activeElement.closest("[data-trigger]").dataset.trigger, document.activeElement.dataset.action] : null;
      if (!list.triggers.length) {
        holder.replaceChildren(h("p", { class: "muted" }, "This session has no triggers (they come with a colony's triggers.json)."));
      } else {
        const width = holder.clientWidth - 34; // the card's padding and border
        holder.replaceChildren(...list.triggers.map((t) => card(t, marks.get(t.id) || [], list.live, now, width)));
      }
      if (focused) {
        holder.querySelector(`[data-trigger="${CSS.escape(focused[0])}"] [data-action="${focused[1]}"]`)?.focus();
      }
    } catch (err) {
      if (!ctx.signal.aborted) {
        holder.replaceChildren(h("p", { class: "error", role: "alert" }, `Could not load triggers: ${err.message}`));
      }
    } finally {
      busy = false;
    }
    if (again && !ctx.signal.aborted) {
      const next = again;
      again = null;
      await load(next);
    }
  }

  let debounce = null;
  load().then(async () => {
    const head = await get(`${base}/events/history?limit=1`, { signal: ctx.signal }).catch(() => null);
    if (!head || ctx.signal.aborted) return;
    follow(`${base}/events`, {
      after: head.next, types: WATCH_TYPES, signal: ctx.signal,
      onEvent: () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => { header.refresh(); load(); }, 300);
      },
    });
  });
  ctx.every(REFRESH_MS, () => load({ fires: false }));
}
