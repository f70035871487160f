// The public HTTP API, with the optional X-Hive-Token on every call.
// The token is asked for once (on the first 401) and kept in sessionStorage;
// live streams are read with fetch + ReadableStream because EventSource cannot
// send headers.

const TOKEN_KEY = "hivelog.token";
let asker = null;
let pendingToken = null;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** `fn(previousWasWrong) -> Promise<string>` shows the token dialog. */
export function setTokenAsker(fn) {
  asker = fn;
}

function headers(extra = {}) {
  const h = { ...extra };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h["X-Hive-Token"] = token;
  return h;
}

/** Every caller that met a 401 waits on the same question. */
function needToken() {
  if (!pendingToken) {
    const hadOne = sessionStorage.getItem(TOKEN_KEY) !== null;
    sessionStorage.removeItem(TOKEN_KEY);
    pendingToken = asker(hadOne).then((token) => {
      sessionStorage.setItem(TOKEN_KEY, token);
      pendingToken = null;
    });
  }
  return pendingToken;
}

async function send(method, path, { body, signal, accept } = {}) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const extra = {};
    if (body !== undefined) extra["Content-Type"] = "application/json";
    if (accept) extra.Accept = accept;
    const res = await fetch(path, {
      method,
      headers: headers(extra),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
    if (res.status === 401 && asker) {
      await res.body?.cancel();
      await needToken();
      continue;
    }
    return res;
  }
  throw new ApiError(401, "unauthorized");
}

/** JSON of a call; a non-2xx answer throws ApiError with the server's `error` text. */
export async function api(method, path, options = {}) {
  const res = await send(method, path, options);
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text };
  }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || res.statusText);
  return data;
}

export const get = (path, options) => api("GET", path, options);
export const post = (path, body, options = {}) => api("POST", path, { ...options, body });

/** Plain text of a GET (the Prometheus exposition). */
export async function getText(path, options = {}) {
  const res = await send("GET", path, options);
  const text = await res.text();
  if (!res.ok) throw new ApiError(res.status, res.statusText);
  return text;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/** Splits a Server-Sent Events byte stream into messages (`id`, `data`); pure. */
export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = "";
    this.id = null;
    this.data = [];
  }

  push(text) {
    // One pass with a cursor: slicing the buffer per line would copy it once per
    // line, quadratic in a catch-up chunk of many events.
    const buffer = this.buffer + text;
    const eol = /\r\n|\r|\n/g;
    let start = 0;
    let m;
    while ((m = eol.exec(buffer)) !== null) {
      if (m[0] === "\r" && m.index === buffer.length - 1) break; // maybe half of \r\n
      this.line(buffer.slice(start, m.index));
      start = m.index + m[0].length;
    }
    this.buffer = buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      if (this.data.length) this.onMessage({ id: this.id, data: this.data.join("\n") });
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return; // keepalive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "id") this.id = value;
  }
}

/**
 * Follows an SSE route until `signal` aborts: catch-up after `after`, then live;
 * on a drop it reconnects from the last id it saw (backing off up to 5 s).
 * `onState("live" | "reconnecting")` reports the connection.
 */
export async function follow(path, { after, types, onEvent, onState, signal }) {
  let last = after;
  let backoff = 250;
  while (!signal.aborted) {
    const params = new URLSearchParams({ types: types || "*" });
    if (last !== null && last !== undefined) params.set("after", String(last));
    try {
      const res = await send("GET", `${path}?${params}`, { signal, accept: "text/event-stream" });
      if (!res.ok || !res.body) throw new ApiError(res.status, res.statusText);
      onState?.("live");
      backoff = 250;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser((msg) => {
        if (msg.id) last = Number(msg.id);
        try {
          onEvent(JSON.parse(msg.data));
        } catch (err) {
          console.warn("bad event", err);
        }
      });
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status === 404) {
        onState?.("gone");
        return;
      }
    }
    if (signal.aborted) return;
    onState?.("reconnecting");
    await sleep(backoff, signal);
    backoff = Math.min(backoff * 2, 5000);
  }
}
