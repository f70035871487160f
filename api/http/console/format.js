// Pure formatting helpers: times, event kinds, schedules in words.

export const LIFECYCLE = new Set([
  "session_created", "session_resumed", "session_adopted", "session_stopped",
  "worker_colony_loaded", "colony_unloaded", "colony_created", "queen_identity_selected",
  "queen_phase_changed", "session_deleted", "session_erased",
]);

/** "life" | "trig" | "" : how the timeline picks an event out. */
export function kindOf(type) {
  if (LIFECYCLE.has(type)) return "life";
  if (type.startsWith("trigger_") || type === "missed_triggers" || type === "webhook_received") {
    return "trig";
  }
  return "";
}

/** Milliseconds since the epoch from seconds, milliseconds or an ISO string. */
export function toMs(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") return value < 1e11 ? value * 1000 : value;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

const pad = (n) => String(n).padStart(2, "0");

/** "2026-12-02 06:40:01" in the browser's zone (or `timeZone`). */
export function fmtTime(value, timeZone) {
  const ms = toMs(value);
  if (ms === null) return "—";
  if (timeZone) {
    try {
      const parts = new Intl.DateTimeFormat("en-CA", {
        timeZone, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      }).formatToParts(new Date(ms));
      const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
      return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
    } catch {
      // an unknown zone: fall through to the browser's
    }
  }
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "3 min ago" / "in 2 h" relative to `now` (ms). */
export function fmtAgo(value, now = Date.now()) {
  const ms = toMs(value);
  if (ms === null) return "—";
  const s = Math.round((ms - now) / 1000);
  const a = Math.abs(s);
  if (a < 2) return "just now";
  const text = a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min`
    : a < 86400 ? `${Math.round(a / 360) / 10} h` : `${Math.round(a / 8640) / 10} d`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits });
}

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
  "September", "October", "November", "December"];

function list(words) {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} and ${words.at(-1)}`;
}

function dayWords(field) {
  if (field === "1-5") return "on weekdays";
  if (field === "0,6" || field === "6,0" || field === "6-7" || field === "sat,sun") return "at weekends";
  const names = field.split(",").map((part) => {
    const [a, b] = part.split("-");
    const name = (x) => (/^\d+$/.test(x) ? DAYS[Number(x) % 7] : x);
    return b ? `${name(a)} to ${name(b)}` : name(a);
  });
  return `on ${list(names)}`;
}

/** A 5-field cron expression in words; falls back to the expression itself. */
export function cronWords(expr) {
  const f = String(expr).trim().split(/\s+/);
  if (f.length !== 5) return `cron ${expr}`;
  const [min, hour, dom, mon, dow] = f;
  const num = (x) => /^\d+$/.test(x);
  const step = (x) => /^\*\/\d+$/.test(x) ? Number(x.slice(2)) : null;
  const anyDay = dom === "*" && mon === "*" && dow === "*";
  if (min === "*" && hour === "*" && anyDay) return "every minute";
  if (step(min) && hour === "*" && anyDay) return `every ${step(min)} minutes`;
  if (num(min) && hour === "*" && anyDay) return `every hour at minute ${Number(min)}`;
  if (num(min) && step(hour) && anyDay) {
    return `every ${step(hour)} hours at minute ${Number(min)}`;
  }
  if (num(min) && /^\d+(,\d+)*$/.test(hour)) {
    const times = list(hour.split(",").map((h) => `${pad(Number(h))}:${pad(Number(min))}`));
    if (anyDay) return `every day at ${times}`;
    if (dom === "*" && mon === "*") return `${dayWords(dow)} at ${times}`;
    if (num(dom) && dow === "*") {
      const months = mon === "*" ? "every month" : num(mon) ? MONTHS[Number(mon) - 1] : `month ${mon}`;
      return `on day ${Number(dom)} of ${months} at ${times}`;
    }
  }
  return `cron ${expr}`;
}

/** A trigger's schedule in words ("every day at 09:00", "every 5 minutes", "webhook POST /x"). */
export function scheduleWords(trigger) {
  const config = trigger.trigger_config || {};
  if (trigger.trigger_type === "webhook") {
    const methods = (config.methods || ["POST"]).join("/");
    return `webhook ${methods} /api/webhooks/${config.path || ""}`;
  }
  if (config.cron) return cronWords(config.cron);
  const minutes = Number(config.interval_minutes);
  if (minutes > 0) {
    if (minutes < 1) return `every ${fmtNum(minutes * 60, 1)} seconds`;
    if (minutes === 1) return "every minute";
    if (minutes % 60 === 0) return minutes === 60 ? "every hour" : `every ${minutes / 60} hours`;
    return `every ${fmtNum(minutes, 2)} minutes`;
  }
  return trigger.trigger_type || "manual";
}

/** The few payload fields worth a glance, for a timeline row. */
export function summary(event) {
  const d = event.data && typeof event.data === "object" ? event.data : {};
  const bits = [];
  for (const key of ["trigger_id", "phase", "colony_id", "runner_node", "reason", "decision",
    "count", "queen_id", "name", "path", "method", "content"]) {
    const v = d[key];
    if (v !== undefined && v !== null && v !== "" && typeof v !== "object") {
      bits.push(`${key}=${String(v).slice(0, 80)}`);
    }
    if (bits.length >= 4) break;
  }
  if (d.forced) bits.push("manual");
  if (d.catch_up) bits.push("catch-up");
  return bits.join("  ");
}

/** Element helper: h("div", {class: "x", onclick}, child, "text"). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
