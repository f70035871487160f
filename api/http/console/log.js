// The log: head position, append rate and group-commit batch sizes over the last
// minutes (from /metrics, sampled every 2 s while this view is open), projection
// lag, nodes and their leases, consumer groups (only when /api/subscriptions
// exists), and the audit button.

import { get, getText, post } from "./api.js";
import { fmtNum, h, s } from "./format.js";
import { intervals, lagNote, parseMetrics, sample } from "./metrics.js";

const SAMPLE_MS = 2000;
const WINDOW_MS = 5 * 60_000;

function sparkline(points, label) {
  const W = 200;
  const H = 28;
  const values = points.map((p) => p ?? 0);
  const max = Math.max(...values, 1e-9);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": label });
  if (values.length > 1) {
    const step = W / (values.length - 1);
    const d = values.map((v, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)} ${(H - 2 - (v / max) * (H - 4)).toFixed(1)}`).join("");
    svg.append(s("path", { d, fill: "none", stroke: "#1f5fbf", "stroke-width": 1.5 }));
  }
  return svg;
}

function card(key, label) {
  const v = h("div", { class: "v", "data-metric": key }, "—");
  const note = h("div", { class: "k", "data-note": key }, "");
  const chart = h("div", { "data-chart": key });
  return { el: h("div", { class: "card" }, h("div", { class: "k" }, label), v, note, chart), v, note, chart };
}

function subscriptionRows(body) {
  // GET /api/subscriptions: {"groups": [{group, types, lag, parked, checkpoint, in_flight, ...}]}
  return (body.groups || []).map((g) => ({
    name: g.group,
    types: g.types ? g.types.join(", ") : "all types",
    lag: g.lag,
    parked: g.parked,
    position: g.checkpoint,
    inFlight: g.in_flight,
  }));
}

export function mountLog(root, _params, ctx) {
  const cards = {
    head: card("head", "Head position"),
    rate: card("rate", "Appends / s"),
    batch: card("batch", "Group-commit batch (mean appends)"),
    commit: card("commit", "Commit time (mean ms)"),
    lag: card("lag", "Projection lag (events)"),
    sse: card("sse", "SSE clients"),
  };
  const nodes = h("div", { id: "nodes" }, h("p", { class: "muted" }, "…"));
  const subs = h("section", { class: "panel", id: "subscriptions", hidden: true, "aria-label": "Consumer groups" });
  const auditButton = h("button", { type: "button", class: "primary", id: "audit" }, "Run audit");
  const auditOut = h("div", { id: "audit-report", role: "status", "aria-live": "polite" });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  root.replaceChildren(
    h("h1", {}, "The log"),
    error,
    h("div", { class: "cards" }, ...Object.values(cards).map((c) => c.el)),
    h("section", { class: "panel", "aria-label": "Nodes" }, h("h2", {}, "Nodes and leases"), nodes),
    subs,
    h("section", { class: "panel", "aria-label": "Audit" },
      h("h2", {}, "Audit"),
      h("p", { class: "muted" }, "Runs the checks of hivelog audit on the server (read-only; one pass over the whole log)."),
      auditButton, auditOut),
  );
  const samples = [];
  let subscriptionsDocumented = false;

  async function scrape() {
    try {
      // /metrics answers while the store is stuck (head and lag NaN) and health is then
      // a 503: show what there is rather than nothing when the operator needs it most
      const [scraped, probed] = await Promise.allSettled([
        getText("/metrics", { signal: ctx.signal }),
        get("/api/health", { signal: ctx.signal }),
      ]);
      if (scraped.status === "rejected") throw scraped.reason;
      const health = probed.status === "fulfilled" ? probed.value : null;
      const now = Date.now();
      samples.push(sample(parseMetrics(scraped.value), now));
      while (samples.length && samples[0].at < now - WINDOW_MS) samples.shift();
      const last = samples.at(-1);
      const steps = intervals(samples);
      const recent = steps.at(-1);
      cards.head.v.textContent = fmtNum(health ? health.head_position : last.head);
      cards.head.note.textContent = health
        ? `${fmtNum(health.sessions)} live sessions, ${fmtNum(health.agents_loaded)} with a colony`
        : "";
      cards.rate.v.textContent = recent ? fmtNum(recent.rate, 1) : "…";
      const seconds = Math.round((now - samples[0].at) / 1000);
      const span = seconds < 90 ? `${seconds} s` : `${Math.round(seconds / 6) / 10} min`;
      const windowAppends = samples.length > 1 ? last.appends - samples[0].appends : 0;
      cards.rate.note.textContent = `${fmtNum(windowAppends)} appends in the last ${span}`;
      cards.rate.chart.replaceChildren(sparkline(steps.map((x) => x.rate), "append rate"));
      const windowCommits = samples.length > 1 ? last.batchCount - samples[0].batchCount : 0;
      const windowBatch = windowCommits > 0 ? (last.batchSum - samples[0].batchSum) / windowCommits : null;
      cards.batch.v.textContent = windowBatch === null ? "—" : fmtNum(windowBatch, 2);
      cards.batch.note.textContent = `${fmtNum(windowCommits)} commits in the window; all-time mean ${last.batchCount ? fmtNum(last.batchSum / last.batchCount, 2) : "—"}`;
      cards.batch.chart.replaceChildren(sparkline(steps.map((x) => x.batch), "batch size"));
      cards.commit.v.textContent = recent && recent.commitMs !== null ? fmtNum(recent.commitMs, 2) : "—";
      cards.commit.chart.replaceChildren(sparkline(steps.map((x) => x.commitMs), "commit time"));
      cards.lag.v.textContent = fmtNum(last.lag);
      cards.lag.note.textContent = lagNote(last.lag);
      cards.sse.v.textContent = fmtNum(last.sse);
      if (health) {
        error.hidden = true;
      } else {
        const status = probed.reason?.status;
        error.textContent = status === 503
          ? "The store is not answering: /api/health answered 503 (its components say what is down)."
          : `Could not read /api/health: ${probed.reason?.message}`;
        error.hidden = ctx.signal.aborted;
      }
    } catch (err) {
      if (ctx.signal.aborted) return;
      error.textContent = `Could not read the metrics: ${err.message}`;
      error.hidden = false;
    }
  }

  async function loadNodes() {
    try {
      const body = await get("/api/admin/nodes", { signal: ctx.signal });
      nodes.replaceChildren(
        h("table", {},
          h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "Lease expires in"), h("th", {}, "Fence"))),
          h("tbody", {}, ...body.nodes.map((n) => h("tr", {},
            h("td", { class: "mono" }, n.node_id, n.node_id === body.this_node ? h("span", { class: "muted" }, " (this node)") : ""),
            h("td", {}, `${fmtNum(n.expires_in, 1)} s`),
            h("td", { class: "num" }, fmtNum(n.fence)))))),
        h("p", { class: "muted" }, `Lease TTL ${fmtNum(body.ttl, 1)} s; ${fmtNum(body.leases_total)} other leases held (timer claims).`),
      );
    } catch (err) {
      if (!ctx.signal.aborted) nodes.replaceChildren(h("p", { class: "error" }, err.message));
    }
  }

  async function loadSubscriptions() {
    // Consumer groups come with /api/subscriptions; until a server has it, no panel.
    // The API document says whether the route exists, so an older server is not
    // asked (and the browser logs no 404); the panel shows only on a 200.
    let body;
    try {
      if (!subscriptionsDocumented) {
        const doc = await get("/openapi.json", { signal: ctx.signal });
        subscriptionsDocumented = Boolean(doc.paths && doc.paths["/api/subscriptions"]);
        if (!subscriptionsDocumented) throw new Error("no /api/subscriptions on this server");
      }
      body = await get("/api/subscriptions", { signal: ctx.signal });
    } catch {
      subs.hidden = true;
      return false;
    }
    const rows = subscriptionRows(body);
    subs.hidden = false;
    subs.replaceChildren(
      h("h2", {}, "Consumer groups"),
      rows.length
        ? h("table", {},
          h("thead", {}, h("tr", {}, ...["Group", "Types", "Lag", "Parked", "Checkpoint", "In flight"].map((t) => h("th", {}, t)))),
          h("tbody", {}, ...rows.map((r) => h("tr", {},
            h("td", { class: "mono" }, r.name), h("td", {}, r.types), h("td", { class: "num" }, fmtNum(r.lag)),
            h("td", { class: `num ${r.parked ? "warn" : ""}` }, fmtNum(r.parked)), h("td", { class: "num" }, fmtNum(r.position)),
            h("td", { class: "num" }, fmtNum(r.inFlight))))))
        : h("p", { class: "muted" }, "No consumer groups."),
    );
    return true;
  }

  auditButton.addEventListener("click", async () => {
    auditButton.disabled = true;
    auditOut.replaceChildren(h("p", { class: "muted" }, "Auditing the log…"));
    try {
      const r = await post("/api/admin/audit", undefined, { signal: ctx.signal });
      auditOut.replaceChildren(
        h("p", { class: r.ok ? "ok" : "error", "data-role": "verdict" },
          r.ok ? "✔ The log is sound" : "✘ Faults found", h("span", { class: "muted" }, ` (${fmtNum(r.seconds, 2)} s)`)),
        h("ul", { class: "audit-list" }, ...r.checks.map((check) => {
          const count = r.fault_counts[check] || 0;
          const skipped = r.skipped[check];
          return h("li", { "data-check": check },
            h("b", {}, check), ": ",
            skipped ? h("span", { class: "muted" }, `skipped (${skipped})`)
              : count ? h("span", { class: "error" }, `${fmtNum(count)} fault${count === 1 ? "" : "s"}`) : h("span", { class: "ok" }, "ok"),
            h("ul", {}, ...r.faults.filter((f) => f.check === check).slice(0, 20).map((f) =>
              h("li", { class: "mono" }, [f.stream_id ? `[${f.stream_id}] ` : "", f.position ? `@${f.position} ` : "", f.message].join("")))));
        })),
        h("p", { class: "muted" }, Object.entries(r.stats).map(([k, v]) => `${k} ${fmtNum(v)}`).join(", ")),
      );
    } catch (err) {
      if (!ctx.signal.aborted) auditOut.replaceChildren(h("p", { class: "error" }, `Audit failed: ${err.message}`));
    } finally {
      auditButton.disabled = false;
    }
  });

  scrape();
  loadNodes();
  loadSubscriptions().then((exists) => { if (exists) ctx.every(5000, loadSubscriptions); });
  ctx.every(SAMPLE_MS, scrape);
  ctx.every(5000, loadNodes);
}
