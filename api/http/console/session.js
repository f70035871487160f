// A session's stream as a timeline, newest first.
//
// Pages of PAGE events come from events/history with position cursors; at most
// CAP rows live in the DOM (paging further drops rows from the other end), so a
// session of a million events costs the same as one of a thousand. New events
// arrive from the SSE route; while the newest page is shown they are inserted at
// the top (keepInView holds what the reader looks at still), otherwise they
// are counted on the "newer" button. Collapsed rows have a fixed height.

import { follow, get } from "./api.js";
import { fmtNum, fmtTime, h, kindOf, summary } from "./format.js";
import { rovingList } from "./keys.js";
import { sessionHeader } from "./header.js";

export const PAGE = 200;
export const CAP = 600;
const FRESH_MAX = 20; // rows of one live batch that flash (more would only cost paint)
const PRESETS = {
  "": "",
  lifecycle: "session_created,session_resumed,session_adopted,session_stopped,worker_colony_loaded,colony_unloaded,queen_phase_changed,queen_identity_selected,colony_created",
  triggers: "trigger_fired,trigger_fire_skipped,missed_triggers,trigger_activated,trigger_deactivated,trigger_available,trigger_updated,trigger_removed,webhook_received",
};

function historyUrl(id, params) {
  const q = new URLSearchParams({ limit: String(PAGE), ...params });
  return `/api/sessions/${encodeURIComponent(id)}/events/history?${q}`;
}

function eventRow(ev, fresh) {
  const kind = kindOf(ev.type);
  const head = h("button", { type: "button", class: "ev-head", "aria-expanded": "false", tabindex: -1 },
    h("span", { class: "t mono", title: String(ev.timestamp ?? "") },
      h("span", { class: "d" }, fmtTime(ev.timestamp).slice(0, 11)), fmtTime(ev.timestamp).slice(11)),
    h("span", { class: "v mono muted" }, `v${ev.version}`),
    h("span", { class: "ty" }, kind ? h("span", { class: `badge ${kind}` }, ev.type) : h("span", { class: "mono" }, ev.type)),
    h("span", { class: "sum mono muted" }, summary(ev)));
  const li = h("li", { class: `ev ${kind}${fresh ? " fresh" : ""}`, "data-pos": ev.position, "data-version": ev.version, "data-type": ev.type }, head);
  head.addEventListener("click", () => {
    const open = head.getAttribute("aria-expanded") === "true";
    head.setAttribute("aria-expanded", String(!open));
    if (open) li.querySelector("pre")?.remove();
    else li.append(h("pre", { tabindex: 0, "aria-label": `${ev.type} JSON` }, JSON.stringify(ev, null, 2)));
  });
  return li;
}

export function mountSession(root, params, ctx) {
  const id = params.id;
  const filterKey = `hivelog.filter.${id}`;
  const header = sessionHeader(id, "timeline", ctx);
  const preset = h("select", { "aria-label": "Event types preset" },
    h("option", { value: "" }, "All types"), h("option", { value: "lifecycle" }, "Lifecycle"),
    h("option", { value: "triggers" }, "Triggers"), h("option", { value: "custom" }, "Custom…"));
  const typesInput = h("input", { type: "text", class: "grow", placeholder: "types, comma-separated (e.g. trigger_fired)",
    "aria-label": "Filter by event types", list: "seen-types", value: sessionStorage.getItem(filterKey) || "" });
  const seen = h("datalist", { id: "seen-types" });
  const liveState = h("span", { class: "muted", role: "status", "aria-live": "polite" });
  const newest = h("button", { type: "button" }, "Newest");
  const oldest = h("button", { type: "button" }, "Oldest");
  const counts = h("p", { class: "counts" });
  const newer = h("button", { type: "button", hidden: true, "data-role": "newer" }, "Newer events");
  const older = h("button", { type: "button", hidden: true, "data-role": "older" }, "Older events");
  const startMark = h("div", { class: "marker", hidden: true, "data-role": "start" }, "● start of stream");
  const list = h("ul", { class: "timeline", id: "timeline", "aria-label": "Events, newest first" });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  root.replaceChildren(
    header.el,
    h("div", { class: "toolbar" }, preset, typesInput, seen, newest, oldest, liveState),
    counts, error,
    h("div", { class: "pager pager-top" }, newer),
    list,
    h("div", { class: "pager" }, older),
    startMark,
  );
  const roving = rovingList(list, "button.ev-head");

  let rows = []; // events in the DOM, newest first (mirrors list.children)
  let hasOlder = false;
  let atHead = true;
  let missed = 0; // live events not shown because an older window is on screen
  let total = 0;
  let generation = 0; // bumps on every reload, so a stale page is ignored
  let stream = null;
  const seenTypes = new Set();

  const types = () => typesInput.value.split(",").map((t) => t.trim()).filter(Boolean).join(",");

  function syncPreset() {
    const t = types();
    preset.value = Object.entries(PRESETS).find(([, v]) => v === t)?.[0] ?? "custom";
  }

  function noteTypes(events) {
    let grew = false;
    for (const ev of events) {
      if (!seenTypes.has(ev.type)) { seenTypes.add(ev.type); grew = true; }
    }
    if (grew) seen.replaceChildren(...[...seenTypes].sort().map((t) => h("option", { value: t })));
  }

  function paint() {
    older.hidden = !hasOlder;
    startMark.hidden = hasOlder || rows.length === 0;
    startMark.textContent = rows.length ? `● start of ${types() ? "matching events" : "stream"}` : "";
    newer.hidden = atHead;
    newer.textContent = missed ? `Newer events (${fmtNum(missed)} new)` : "Newer events";
    const shown = rows.length ? `v${rows.at(-1).version}–v${rows[0].version}` : "none";
    counts.replaceChildren(
      h("span", {}, "events ", h("b", { "data-role": "total" }, fmtNum(total))),
      h("span", {}, "shown ", h("b", {}, fmtNum(rows.length)), ` (${shown})`),
      h("span", { class: "muted" }, atHead ? "newest page" : "older window"),
    );
    if (!rows.length) {
      if (!list.querySelector(".marker")) list.replaceChildren(h("li", { class: "marker" }, "No events."));
    } else {
      list.querySelector(":scope > .marker")?.remove();
    }
    roving.settle();
  }

  function replace(events) {
    rows = events;
    list.replaceChildren(...events.map((ev) => eventRow(ev, false)));
  }

  /** The first row whose top edge is below the sticky header, or null at the very top. */
  function anchorRow() {
    if (window.scrollY <= 0) return null; // the reader watches the newest: let them arrive
    const headerBottom = document.querySelector(".top")?.getBoundingClientRect().bottom ?? 0;
    for (const li of list.children) {
      if (li.getBoundingClientRect().bottom > headerBottom) return li;
    }
    return null;
  }

  /** Runs a DOM change with the row the reader looks at held still (no layout jump),
   * whatever the browser's own scroll anchoring does (the page turns it off). */
  function keepInView(mutate) {
    const anchor = anchorRow();
    const before = anchor?.getBoundingClientRect().top;
    mutate();
    if (anchor && anchor.isConnected) {
      const moved = anchor.getBoundingClientRect().top - before;
      if (moved) window.scrollBy(0, moved);
    }
  }

  function addTop(events, fresh) { // events newest first
    if (!events.length) return;
    keepInView(() => addTopNow(events, fresh));
  }

  function addTopNow(events, fresh) {
    list.querySelector(":scope > .marker")?.remove();
    list.prepend(...events.map((ev, i) => eventRow(ev, fresh && i < FRESH_MAX)));
    rows = events.concat(rows);
    if (rows.length > CAP) {
      const drop = rows.length - CAP;
      for (let i = 0; i < drop; i++) list.lastElementChild.remove();
      rows.length = CAP;
      hasOlder = true;
    }
  }

  function addBottom(events) { // events newest first, all older than rows
    keepInView(() => addBottomNow(events));
  }

  function addBottomNow(events) {
    list.append(...events.map((ev) => eventRow(ev, false)));
    rows = rows.concat(events);
    if (rows.length > CAP) {
      const drop = rows.length - CAP;
      for (let i = 0; i < drop; i++) list.firstElementChild.remove();
      rows = rows.slice(drop);
      atHead = false;
    }
  }

  async function page(params) {
    const t = types();
    const body = await get(historyUrl(id, t ? { ...params, types: t } : params), { signal: ctx.signal });
    total = body.total;
    noteTypes(body.events);
    return body;
  }

  function showError(err) {
    if (ctx.signal.aborted) return;
    error.textContent = err.status === 404 ? "This session does not exist (or was deleted)." : `Could not load events: ${err.message}`;
    error.hidden = false;
  }

  async function loadNewest() {
    const gen = ++generation;
    try {
      const body = await page({});
      if (gen !== generation) return;
      error.hidden = true;
      replace(body.events.reverse());
      hasOlder = body.has_more_older;
      atHead = true;
      missed = 0;
      paint();
      window.scrollTo({ top: 0 });
      startLive(rows.length ? rows[0].position : body.next);
    } catch (err) {
      showError(err);
    }
  }

  async function loadOldest() {
    const gen = ++generation;
    try {
      const body = await page({ after: "0" });
      if (gen !== generation) return;
      replace(body.events.reverse());
      hasOlder = false;
      atHead = !body.has_more_newer;
      missed = 0;
      paint();
      const last = list.lastElementChild?.querySelector("button");
      last?.scrollIntoView({ block: "end" });
      if (atHead) startLive(rows.length ? rows[0].position : body.next);
    } catch (err) {
      showError(err);
    }
  }

  async function loadOlder() {
    if (!rows.length) return;
    const gen = generation;
    older.disabled = true;
    try {
      const body = await page({ before: String(rows.at(-1).position) });
      if (gen !== generation) return;
      addBottom(body.events.reverse());
      hasOlder = body.has_more_older;
      paint();
    } catch (err) {
      showError(err);
    } finally {
      older.disabled = false;
    }
  }

  async function loadNewer() {
    if (!rows.length) return loadNewest();
    const gen = generation;
    newer.disabled = true;
    try {
      const body = await page({ after: String(rows[0].position) });
      if (gen !== generation) return;
      addTop(body.events.reverse(), false);
      missed = Math.max(0, missed - body.events.length);
      if (!body.has_more_newer) {
        atHead = true;
        missed = 0;
      }
      paint();
    } catch (err) {
      showError(err);
    } finally {
      newer.disabled = false;
    }
  }

  function startLive(after) {
    stream?.abort();
    stream = new AbortController();
    const signal = stream.signal;
    ctx.signal.addEventListener("abort", () => stream?.abort(), { once: true });
    const pending = [];
    let scheduled = false;
    const flush = () => { // one DOM update per animation frame, however fast events come
      scheduled = false;
      const batch = pending.splice(0).filter((ev) => !rows.length || ev.position > rows[0].position);
      if (!batch.length) return;
      noteTypes(batch);
      total = Math.max(total, batch.at(-1).version);
      const anchor = atHead ? anchorRow() : null;
      const reading = anchor ? Array.prototype.indexOf.call(list.children, anchor) : 0;
      if (atHead && reading + batch.length > CAP - PAGE) {
        // the row being read would be pushed out of the window: stop following and
        // count instead (the "Newer events" button brings them)
        atHead = false;
        missed += batch.length;
      } else if (atHead) {
        // rows beyond the cap would be dropped at once: never build them
        const kept = batch.slice(-CAP).reverse();
        if (kept.length < batch.length) hasOlder = true;
        addTop(kept, true);
      } else {
        missed += batch.length;
      }
      keepInView(paint); // the "Newer events" button may appear above the rows
      header.refresh();
    };
    follow(`/api/sessions/${encodeURIComponent(id)}/events`, {
      after, types: types() || "*", signal,
      onEvent: (ev) => {
        pending.push(ev);
        if (!scheduled) { scheduled = true; requestAnimationFrame(flush); }
      },
      onState: (state) => {
        liveState.textContent = state === "live" ? "● live" : state === "gone" ? "stream gone" : "reconnecting…";
      },
    });
  }

  function applyFilter() {
    sessionStorage.setItem(filterKey, types());
    syncPreset();
    loadNewest();
  }

  preset.addEventListener("change", () => {
    if (preset.value === "custom") { typesInput.focus(); return; }
    typesInput.value = PRESETS[preset.value];
    applyFilter();
  });
  typesInput.addEventListener("change", applyFilter);
  newest.addEventListener("click", loadNewest);
  oldest.addEventListener("click", loadOldest);
  older.addEventListener("click", loadOlder);
  newer.addEventListener("click", loadNewer);
  syncPreset();
  loadNewest();
}
