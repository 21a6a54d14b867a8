// The API: the token (sessionStorage only, sent to /api/admin/* as the bearer
// token), the signed-in role, JSON requests and a job's event stream.

export const TOKEN_KEY = "conveyor.token";
export let role = null; // "admin" or "viewer" once signed in
let queueNames = null; // configured queues, fetched once
let refused = () => {}; // what a refused token does (the router shows the sign-in)

export const isAdmin = () => role === "admin";
export function setRole(value) {
  role = value;
}
export function setQueueNames(names) {
  queueNames = names;
}
/** Sets what a 401 on any call does. */
export function onRefused(fn) {
  refused = fn;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}
export const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

export async function request(path, { method = "GET", body, signal, bearer = token(), accept } = {}) {
  const headers = { Authorization: `Bearer ${bearer}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (accept) headers.Accept = accept;
  try {
    return await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "unreachable", "The API cannot be reached.");
  }
}
export async function errorOf(res) {
  let data = null;
  try {
    data = await res.json();
  } catch (_) {
    /* not JSON */
  }
  const err = data && data.error;
  return new ApiError(res.status, err ? err.code : `http_${res.status}`, err ? err.message : `The API answered ${res.status}.`);
}
/** JSON of an admin route; a refused token signs out. */
export async function api(path, options) {
  const res = await request(path, options);
  if (res.status === 401) {
    refused();
    throw new ApiError(401, "unauthorized", "refused");
  }
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204) return null;
  return res.json();
}
export async function queues() {
  if (!queueNames) queueNames = (await api("/api/admin/queues")).map((q) => q.queue).sort();
  return queueNames;
}

/**
 * Reads a job's Server-Sent Events with fetch (EventSource cannot send the
 * Authorization header) and calls onEvent(name, data) for each event.
 */
export async function followEvents(id, signal, onEvent) {
  const res = await request(`/api/admin/jobs/${encodeURIComponent(id)}/events`, { signal, accept: "text/event-stream" });
  if (res.status === 401) {
    refused();
    throw new ApiError(401, "unauthorized", "refused");
  }
  if (!res.ok || !res.body) throw await errorOf(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "message";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      let line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (data.length) onEvent(event, data.join("\n"));
        event = "message";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue; // keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "event") event = val;
      else if (field === "data") data.push(val);
    }
  }
}
