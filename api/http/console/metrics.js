// Prometheus text exposition, parsed client-side, and rates over a sliding window. Pure.

/** `{name: [{labels, value}]}` from the text format (comments skipped). */
export function parseMetrics(text) {
  const out = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    (out[m[1]] ||= []).push({ labels, value: Number(m[4]) });
  }
  return out;
}

/** The single (unlabelled or first) value of a metric, or null. */
export function value(metrics, name) {
  const series = metrics[name];
  return series && series.length ? series[0].value : null;
}

/** The numbers the log view charts, from one scrape. */
export function sample(metrics, at) {
  return {
    at,
    appends: value(metrics, "hivelog_appends_total"),
    batchSum: value(metrics, "hivelog_group_commit_batch_size_sum"),
    batchCount: value(metrics, "hivelog_group_commit_batch_size_count"),
    commitSum: value(metrics, "hivelog_append_commit_seconds_sum"),
    commitCount: value(metrics, "hivelog_append_commit_seconds_count"),
    head: value(metrics, "hivelog_log_head_position"),
    lag: value(metrics, "hivelog_projection_lag_events"),
    sse: value(metrics, "hivelog_sse_clients"),
  };
}

/**
 * Per-interval figures between consecutive samples: appends per second, mean
 * group-commit batch size, mean commit milliseconds (null when no commit happened).
 * A counter that went down (server restarted) starts a new series.
 */
export function intervals(samples) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const seconds = (b.at - a.at) / 1000;
    const commits = b.batchCount - a.batchCount;
    if (seconds <= 0 || b.appends < a.appends || commits < 0) continue;
    out.push({
      at: b.at,
      rate: (b.appends - a.appends) / seconds,
      batch: commits > 0 ? (b.batchSum - a.batchSum) / commits : null,
      commitMs: commits > 0 ? ((b.commitSum - a.commitSum) / commits) * 1000 : null,
      commits,
    });
  }
  return out;
}

/** The projection lag card's note; NaN or null: /metrics could not read the log head. */
export function lagNote(lag) {
  if (lag === null || Number.isNaN(lag)) return "unknown: the store is not answering";
  return lag ? "the projection is catching up" : "up to date";
}
