// Conveyor's dashboard: plain JavaScript, no build step, no other origin. The page
// routes on the client (history API); every path it knows is also answered with
// this page by conveyor-api. The token lives in sessionStorage only and goes to
// /api/admin/* as the bearer token.
"use strict";
(() => {
  const TOKEN_KEY = "conveyor.token";
  const SVG = "http://www.w3.org/2000/svg";
  const STATUSES = ["PENDING", "DELAYED", "RUNNING", "RETRYING", "COMPLETED", "FAILED", "CANCELLED"];
  const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
  const CLEANABLE = ["COMPLETED", "FAILED", "CANCELLED"];
  const PRIORITY_NAMES = { 1: "LOW", 5: "NORMAL", 10: "HIGH", 20: "CRITICAL" };
  const SCHEDULE_STATUS = { 0: "disabled", 1: "enabled", 2: "paused" };
  const PAGE_SIZE = 20;

  const $ = (id) => document.getElementById(id);
  const main = $("main");
  let role = null; // "admin" or "viewer" once signed in
  let view = null; // the current page's timers and requests
  let queueNames = null; // configured queues, fetched once

  // ---------------------------------------------------------------- DOM helpers

  /** h("a", {href: "/", class: "x", onclick: f}, "text", child, [more]) */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else if (k === "value") el.value = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }
  /** Replaces el's children (flattening arrays, skipping null and false). */
  function fill(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }
  function svg(tag, attrs) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }
  const isAdmin = () => role === "admin";
  const num = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "—");
  const pad = (n) => String(n).padStart(2, "0");
  function when(iso) {
    if (!iso) return h("span", { class: "muted" }, "—");
    const d = new Date(iso);
    const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return h("time", { datetime: iso, title: ago(d) }, text);
  }
  function ago(d) {
    const s = Math.round((Date.now() - d.getTime()) / 1000);
    const abs = Math.abs(s);
    const t = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 86400 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
    return s >= 0 ? `${t} ago` : `in ${t}`;
  }
  function ms(n) {
    if (typeof n !== "number") return "—";
    return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`;
  }
  const status = (s) => h("span", { class: `status s-${s}` }, s);
  // The end of an id: UUIDv7 ids begin with their time, so their ends differ.
  const short = (id) => String(id).slice(-8);
  const jobLink = (id) => h("a", { href: `/jobs/${encodeURIComponent(id)}`, class: "mono", title: id }, short(id));
  const priority = (p) => (PRIORITY_NAMES[p] ? `${p} (${PRIORITY_NAMES[p]})` : String(p));
  const json = (v) => h("pre", {}, JSON.stringify(v, null, 2));
  /** Long text in a cell: three lines at most, the whole of it on hover. */
  const clamp = (text) => (text ? h("div", { class: "clamp", title: text }, text) : "");

  /** A table in a box that scrolls sideways on its own. cols: [label, cell(row), class?] */
  function table(cols, rows, empty) {
    const head = h("tr", {}, cols.map(([label, , cls]) => h("th", { class: cls, scope: "col" }, label)));
    const body = rows.length
      ? rows.map((row) => h("tr", {}, cols.map(([, cell, cls]) => h("td", { class: cls }, cell(row)))))
      : [h("tr", {}, h("td", { class: "empty", colspan: cols.length }, empty || "Nothing here."))];
    return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
  }

  // ---------------------------------------------------------------- messages

  let flashTimer = 0;
  function flash(message, kind) {
    const el = $("flash");
    clearTimeout(flashTimer);
    if (!message) {
      el.hidden = true;
      el.replaceChildren();
      return;
    }
    el.className = `flash ${kind || "ok"}`;
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    fill(el, ...(Array.isArray(message) ? message : [message]));
    el.hidden = false;
    if (kind !== "error") flashTimer = setTimeout(() => flash(null), 8000);
  }
  function failed(e) {
    if (!e || e.name === "AbortError" || e.status === 401) return;
    flash(e.message || String(e), "error");
  }

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

  async function request(path, { method = "GET", body, signal, bearer = token(), accept } = {}) {
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
  async function errorOf(res) {
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
  async function api(path, options) {
    const res = await request(path, options);
    if (res.status === 401) {
      refused();
      throw new ApiError(401, "unauthorized", "refused");
    }
    if (!res.ok) throw await errorOf(res);
    if (res.status === 204) return null;
    return res.json();
  }
  async function queues() {
    if (!queueNames) queueNames = (await api("/api/admin/queues")).map((q) => q.queue).sort();
    return queueNames;
  }

  /**
   * Reads a job's Server-Sent Events with fetch (EventSource cannot send the
   * Authorization header) and calls onEvent(name, data) for each event.
   */
  async function followEvents(id, signal, onEvent) {
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

  // ---------------------------------------------------------------- pages and routing

  /** A page's lifetime: its requests are aborted and its timers stopped on leaving. */
  function newView() {
    if (view) view.close();
    const controller = new AbortController();
    const timers = new Set();
    const v = {
      signal: controller.signal,
      closed: false,
      close() {
        v.closed = true;
        controller.abort();
        timers.forEach(clearTimeout);
        timers.clear();
      },
      /** Runs fn now and then every `every` ms after it finished (skipped while hidden). */
      poll(every, fn) {
        const tick = async () => {
          if (v.closed) return;
          if (!document.hidden) {
            try {
              await fn();
            } catch (e) {
              if (!v.closed) failed(e);
            }
          }
          if (!v.closed) timers.add(setTimeout(tick, every));
        };
        return tick();
      },
      sleep(delay) {
        return new Promise((resolve) => timers.add(setTimeout(resolve, delay)));
      },
    };
    view = v;
    return v;
  }

  function page(title, ...content) {
    document.title = `${title} · Conveyor`;
    fill(main, ...content.flat());
  }

  const ROUTES = [
    [/^\/$/, () => overview()],
    [/^\/jobs$/, (m, q) => jobList(q)],
    [/^\/jobs\/([^/]+)$/, (m) => jobPage(decodeURIComponent(m[1]))],
    [/^\/queues\/([^/]+)$/, (m) => queuePage(decodeURIComponent(m[1]))],
    [/^\/dead-letters$/, (m, q) => deadLetters(q)],
    [/^\/scheduled$/, () => scheduled()],
    [/^\/workers$/, () => workers()],
    [/^\/authors$/, (m, q) => authors(q)],
    [/^\/books$/, (m, q) => books(q)],
    [/^\/quotes$/, (m, q) => quotes(q)],
  ];

  function route() {
    flash(null);
    const path = location.pathname;
    const query = new URLSearchParams(location.search);
    const section = `/${path.split("/")[1] || ""}`;
    for (const a of $("nav").querySelectorAll("a")) {
      const target = a.getAttribute("href");
      const current = target === section || (section === "/queues" && target === "/");
      if (current) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    for (const [pattern, render] of ROUTES) {
      const m = path.match(pattern);
      if (m) {
        render(m, query);
        window.scrollTo(0, 0);
        return;
      }
    }
    newView();
    page("Not found", h("h1", {}, "No such page"), h("p", {}, h("a", { href: "/" }, "Back to the overview")));
  }

  function navigate(url, replace) {
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
    route();
  }

  document.addEventListener("click", (e) => {
    const a = e.target.closest && e.target.closest("a[href]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/api/") || !role) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", () => {
    if (role) route();
  });

  /** Asks first; runs `action` only after "Confirm". */
  function confirmFirst(message, action) {
    const dialog = $("confirm");
    $("confirm-text").textContent = message;
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue === "confirm") action();
      },
      { once: true },
    );
    dialog.showModal();
    $("confirm-yes").focus();
  }

  /** A button that runs `run` (after confirmation when `ask` is given); admins only. */
  function actionButton(label, run, ask) {
    if (!isAdmin()) return null;
    const button = h("button", { type: "button" }, label);
    const go = async () => {
      button.disabled = true;
      try {
        await run();
      } catch (e) {
        failed(e);
      } finally {
        button.disabled = false;
      }
    };
    button.addEventListener("click", () => (ask ? confirmFirst(typeof ask === "function" ? ask() : ask, go) : go()));
    return button;
  }

  function pager(pageNo, limit, total, base) {
    const pages = Math.max(1, Math.ceil(total / limit));
    const link = (n, label) => {
      const q = new URLSearchParams(base);
      if (n > 1) q.set("page", String(n));
      else q.delete("page");
      const s = q.toString();
      return h("a", { href: `${location.pathname}${s ? `?${s}` : ""}`, rel: label === "Next" ? "next" : "prev" }, label);
    };
    return h(
      "div",
      { class: "pager" },
      pageNo > 1 ? link(pageNo - 1, "Previous") : null,
      h("span", {}, `Page ${num(pageNo)} of ${num(pages)} · ${num(total)} in all`),
      pageNo < pages ? link(pageNo + 1, "Next") : null,
    );
  }
  function pageNumber(q) {
    const n = Number.parseInt(q.get("page") || "1", 10);
    return Number.isFinite(n) && n >= 1 ? n : 1;
  }

  // ---------------------------------------------------------------- overview

  const samples = []; // {t, completed: completed in the last minute}
  const WINDOW_MS = 10 * 60 * 1000;

  function chart() {
    const now = Date.now();
    while (samples.length && samples[0].t < now - WINDOW_MS) samples.shift();
    const W = 600;
    const H = 120;
    const box = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    const max = Math.max(1, ...samples.map((s) => s.completed));
    const top = max * 1.15;
    for (const f of [0.25, 0.5, 0.75]) box.append(svg("line", { class: "grid", x1: 0, x2: W, y1: H * f, y2: H * f }));
    // The axis spans the samples taken so far, up to the last 10 minutes.
    const span = Math.max(60000, samples.length ? now - samples[0].t : 0);
    const x = (t) => ((t - (now - span)) / span) * W;
    const y = (v) => H - (v / top) * H;
    const points = samples.map((s) => `${x(s.t).toFixed(1)},${y(s.completed).toFixed(1)}`);
    const latest = samples.length ? samples[samples.length - 1].completed : 0;
    box.setAttribute("aria-label", `Jobs completed per minute, sampled every 3 seconds; now ${latest}`);
    if (points.length >= 2) {
      const first = x(samples[0].t).toFixed(1);
      const last = x(samples[samples.length - 1].t).toFixed(1);
      box.append(svg("polygon", { class: "area", points: `${first},${H} ${points.join(" ")} ${last},${H}` }));
      box.append(svg("polyline", { class: "line", points: points.join(" ") }));
    }
    return h(
      "div",
      {},
      box,
      h(
        "div",
        { class: "chart-legend" },
        h("span", {}, samples.length ? `${Math.max(1, Math.round(Math.max(60000, now - samples[0].t) / 60000))} min ago` : ""),
        h("span", {}, samples.length < 2 ? "collecting samples…" : `peak ${num(max)}/min`),
        h("span", {}, "now"),
      ),
    );
  }

  function card(label, value, sub, href) {
    return h(
      "div",
      { class: "card" },
      h("div", { class: "label" }, label),
      href ? h("a", { class: "value", href }, value) : h("div", { class: "value" }, value),
      sub ? h("div", { class: "sub" }, sub) : null,
    );
  }

  function overview() {
    const v = newView();
    const cards = h("div", { class: "cards" });
    const alerts = h("div", {});
    const chartBox = h("div", { class: "panel" }, chart());
    const queueBox = h("div", {}, h("p", { class: "muted" }, "Loading…"));
    page("Overview", h("h1", {}, "Overview"), cards, alerts, h("h2", {}, "Throughput"), chartBox, h("h2", {}, "Queues"), queueBox);
    v.poll(3000, async () => {
      // Both answer from counters, not by counting jobs.
      const [st, sm] = await Promise.all([
        api("/api/admin/system/status", { signal: v.signal }),
        api("/api/admin/metrics/summary", { signal: v.signal }),
      ]);
      if (v.closed) return;
      samples.push({ t: Date.now(), completed: st.processingRate.completedLastMinute });
      queueNames = st.queues.map((q) => q.queue).sort();
      const service = (s) => h("span", { class: `status s-${s.status}` }, s.status === "up" ? `up ${s.latencyMs} ms` : "down");
      fill(
        cards,
        card("Completed in the last minute", num(st.processingRate.completedLastMinute), `${st.processingRate.perSecond} per second`),
        card("Jobs recorded", num(sm.totalJobs), `${num(sm.completedJobs)} completed · ${num(sm.failedJobs)} failed`, "/jobs"),
        card("Success rate", `${(sm.successRate * 100).toFixed(1)} %`, `mean attempt ${ms(sm.averageProcessingTimeMs)} (24 h)`),
        h(
          "div",
          { class: "card" },
          h("div", { class: "label" }, "Services"),
          h("div", { class: "service" }, "PostgreSQL ", service(st.postgres)),
          h("div", { class: "service" }, "Redis ", service(st.redis)),
        ),
        card("Version", st.version, `up ${ago(new Date(Date.now() - st.uptimeSeconds * 1000)).replace(" ago", "")}`),
      );
      fill(
        alerts,
        st.alerts.length
          ? h("ul", { class: "alerts" }, st.alerts.map((a) => h("li", { class: a.severity }, h("strong", {}, a.name), ` (${a.severity}): ${a.message}`)))
          : "",
      );
      fill(chartBox, chart());
      const count = (q, key, s) =>
        q[key] ? h("a", { href: `/jobs?queue=${encodeURIComponent(q.queue)}&status=${s}` }, num(q[key])) : h("span", { class: "muted" }, "0");
      fill(
        queueBox,
        table(
          [
            ["Queue", (q) => h("a", { href: `/queues/${encodeURIComponent(q.queue)}` }, q.queue)],
            ["State", (q) => status(q.paused ? "paused" : "running")],
            ["Waiting", (q) => count(q, "waiting", "PENDING"), "num"],
            ["Active", (q) => count(q, "active", "RUNNING"), "num"],
            ["Delayed", (q) => count(q, "delayed", "DELAYED"), "num"],
            ["Retrying", (q) => count(q, "retrying", "RETRYING"), "num"],
            ["Failed", (q) => count(q, "failed", "FAILED"), "num"],
            ["Completed", (q) => count(q, "completed", "COMPLETED"), "num"],
            ["Cancelled", (q) => count(q, "cancelled", "CANCELLED"), "num"],
          ],
          st.queues,
          "No queue is configured.",
        ),
      );
    });
  }

  // ---------------------------------------------------------------- jobs

  function jobRows(items, empty) {
    return table(
      [
        ["Job", (j) => jobLink(j.id)],
        ["Queue", (j) => h("a", { href: `/queues/${encodeURIComponent(j.queueName)}` }, j.queueName)],
        ["Type", (j) => j.jobType],
        ["Status", (j) => status(j.status)],
        ["Priority", (j) => priority(j.priority), "num"],
        ["Attempts", (j) => `${j.attempts} / ${j.maxAttempts}`, "num"],
        ["Progress", (j) => (j.status === "RUNNING" ? h("progress", { max: 100, value: j.progress, title: `${j.progress} %` }) : "")],
        ["Created", (j) => when(j.createdAt)],
      ],
      items,
      empty,
    );
  }

  async function jobList(q) {
    const v = newView();
    const filters = { queue: q.get("queue") || "", status: q.get("status") || "", jobType: q.get("jobType") || "" };
    const pageNo = pageNumber(q);
    const queueSelect = h("select", { name: "queue", id: "f-queue" }, h("option", { value: "" }, "All queues"));
    const statusSelect = h(
      "select",
      { name: "status", id: "f-status" },
      h("option", { value: "" }, "All statuses"),
      STATUSES.map((s) => h("option", { value: s }, s)),
    );
    statusSelect.value = filters.status;
    const typeInput = h("input", { name: "jobType", id: "f-type", type: "text", value: filters.jobType, placeholder: "e.g. SLEEP", autocomplete: "off", spellcheck: "false" });
    const form = h(
      "form",
      { class: "filters", role: "search" },
      h("label", { for: "f-queue" }, "Queue", queueSelect),
      h("label", { for: "f-status" }, "Status", statusSelect),
      h("label", { for: "f-type" }, "Job type", typeInput),
      h("button", { type: "submit" }, "Filter"),
      h("a", { href: "/jobs" }, "Clear"),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const next = new URLSearchParams();
      if (queueSelect.value) next.set("queue", queueSelect.value);
      if (statusSelect.value) next.set("status", statusSelect.value);
      if (typeInput.value.trim()) next.set("jobType", typeInput.value.trim().toUpperCase());
      const s = next.toString();
      navigate(`/jobs${s ? `?${s}` : ""}`);
    });
    const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
    page("Jobs", h("h1", {}, "Jobs"), form, list);
    queues()
      .then((names) => {
        if (v.closed) return;
        const all = filters.queue && !names.includes(filters.queue) ? [...names, filters.queue] : names;
        queueSelect.append(...all.map((n) => h("option", { value: n }, n)));
        queueSelect.value = filters.queue;
      })
      .catch(failed);
    const query = new URLSearchParams();
    for (const [k, val] of Object.entries(filters)) if (val) query.set(k, val);
    query.set("page", String(pageNo));
    query.set("limit", String(PAGE_SIZE));
    v.poll(5000, async () => {
      const data = await api(`/api/admin/jobs?${query}`, { signal: v.signal });
      if (v.closed) return;
      const base = new URLSearchParams(location.search);
      fill(list, jobRows(data.items, "No job matches these filters."), pager(data.page, data.limit, data.total, base));
    });
  }

  async function jobPage(id) {
    const v = newView();
    const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
    page(`Job ${short(id)}`, h("h1", {}, "Job ", h("code", {}, id)), body);
    let job = null;
    let following = false;
    const live = {}; // elements updated by events

    async function load() {
      try {
        job = await api(`/api/admin/jobs/${encodeURIComponent(id)}`, { signal: v.signal });
      } catch (e) {
        if (e.status === 404 || e.status === 400) {
          job = null;
          fill(body, h("p", { class: "notice" }, e.status === 404 ? "This job does not exist (any more)." : e.message), h("p", {}, h("a", { href: "/jobs" }, "All jobs")));
          return null;
        }
        throw e;
      }
      if (!v.closed) render();
      return job;
    }

    function progressCell() {
      return h(
        "div",
        { class: "progress" },
        h("progress", { max: 100, value: job.progress, "aria-label": "Progress" }),
        h("span", { "data-live": "progress" }, `${job.progress} %`),
        job.progressMessage ? h("span", { class: "muted" }, job.progressMessage) : null,
      );
    }

    function render() {
      const actions = h(
        "div",
        { class: "actions" },
        job.status === "FAILED" || job.status === "CANCELLED"
          ? actionButton(
              "Retry",
              async () => {
                await api(`/api/admin/jobs/${encodeURIComponent(id)}/retry`, { method: "POST" });
                flash("The job is waiting to run again.");
                await load();
                follow();
              },
              "Run this job again (a new run, attempts start at 0)?",
            )
          : null,
        !TERMINAL.has(job.status)
          ? actionButton(
              "Cancel",
              async () => {
                // DELETE removes a finished job's record: look again right before.
                const now = await api(`/api/admin/jobs/${encodeURIComponent(id)}`);
                if (TERMINAL.has(now.status)) {
                  flash(`The job is already ${now.status}: nothing to cancel.`);
                  await load();
                  return;
                }
                await api(`/api/admin/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
                flash(job.status === "RUNNING" ? "Cancellation requested: the running attempt stops shortly." : "The job is cancelled.");
                await load();
              },
              () => (job.status === "RUNNING" ? "Stop this running job?" : "Cancel this job before it runs?"),
            )
          : null,
      );
      live.status = h("span", {}, status(job.status));
      live.attempts = h("span", {}, `${job.attempts} / ${job.maxAttempts}`);
      live.progress = h("div", {}, progressCell());
      const fields = [
        ["Status", live.status],
        ["Queue", h("a", { href: `/queues/${encodeURIComponent(job.queueName)}` }, job.queueName)],
        ["Type", h("code", {}, job.jobType)],
        ["Priority", priority(job.priority)],
        ["Attempts", live.attempts],
        !TERMINAL.has(job.status) || job.progress > 0 ? ["Progress", live.progress] : null,
        ["Created", when(job.createdAt)],
        ["Run at", when(job.runAt)],
        ["Started", when(job.startedAt)],
        ["Finished", when(job.completedAt)],
        job.timeoutMs ? ["Timeout", ms(job.timeoutMs)] : null,
        job.parentId ? ["Parent", jobLink(job.parentId)] : null,
        job.idempotencyKey ? ["Idempotency key", h("code", {}, job.idempotencyKey)] : null,
        job.cancelRequested ? ["Cancellation", "requested"] : null,
      ].filter(Boolean);
      fill(
        body,
        actions,
        h("div", { class: "panel" }, h("dl", { class: "fields" }, fields.map(([k, val]) => [h("dt", {}, k), h("dd", {}, val)]))),
        h("h2", {}, "Payload"),
        json(job.payload),
        job.result !== null && job.result !== undefined ? [h("h2", {}, "Result"), json(job.result)] : null,
        job.error ? [h("h2", {}, "Error"), h("pre", { class: "error-text" }, job.error)] : null,
        h("h2", {}, "Executions"),
        table(
          [
            ["Run", (x) => x.run, "num"],
            ["Attempt", (x) => x.attempt, "num"],
            ["Status", (x) => status(x.status)],
            ["Started", (x) => when(x.startedAt)],
            ["Duration", (x) => ms(x.durationMs), "num"],
            ["Worker", (x) => h("code", {}, x.workerId)],
            ["Error", (x) => clamp(x.error), "wrap"],
          ],
          job.executions || [],
          "No attempt has finished yet.",
        ),
      );
    }

    function onEvent(name, raw) {
      let data;
      try {
        data = JSON.parse(raw);
      } catch (_) {
        return false;
      }
      if (!job) return false;
      if (name === "progress") {
        job.progress = data.progress;
        job.progressMessage = data.progressMessage;
        fill(live.progress, progressCell());
      } else if (name === "status") {
        const changed = data.status !== job.status;
        job.status = data.status;
        job.attempts = data.attempts;
        live.status.replaceChildren(status(data.status));
        live.attempts.textContent = `${job.attempts} / ${job.maxAttempts}`;
        if (TERMINAL.has(data.status)) return true;
        if (changed) load().catch(failed); // executions, start time, actions
      }
      return false;
    }

    /** Follows the event stream until the job is terminal; falls back to polling. */
    async function follow() {
      if (following || !job || TERMINAL.has(job.status)) return;
      following = true;
      try {
        while (!v.closed && job && !TERMINAL.has(job.status)) {
          let ended = false;
          try {
            await followEvents(id, v.signal, (name, raw) => {
              if (onEvent(name, raw)) ended = true;
            });
          } catch (e) {
            if (v.closed || e.status === 401) return;
            if (e.status === 404) break;
            await v.sleep(3000); // e.g. too many streams: read the record instead
          }
          if (v.closed) return;
          try {
            await load();
          } catch (e) {
            if (v.closed || e.status === 401) return;
            failed(e);
            await v.sleep(3000);
          }
          if (!ended) await v.sleep(1000);
        }
      } finally {
        following = false;
      }
    }

    try {
      if (await load()) follow();
    } catch (e) {
      failed(e);
    }
  }

  // ---------------------------------------------------------------- one queue

  function queuePage(name) {
    const v = newView();
    const head = h("div", { class: "head start" }, h("h1", {}, "Queue ", h("code", {}, name)));
    const stateBox = h("span", {});
    const actions = h("div", { class: "actions" });
    const cards = h("div", { class: "cards small" });
    const recent = h("div", {});
    let paused = null;

    const cleanStatus = h("select", { id: "clean-status" }, CLEANABLE.map((s) => h("option", { value: s }, s)));
    const cleanGrace = h("input", { id: "clean-grace", type: "number", min: 0, step: 1, value: "60", inputmode: "numeric" });
    const cleanForm = isAdmin()
      ? [
          h("h2", {}, "Clean finished records"),
          h(
            "div",
            { class: "filters" },
            h("label", { for: "clean-status" }, "Status", cleanStatus),
            h("label", { for: "clean-grace" }, "Finished more than (minutes) ago", cleanGrace),
            actionButton(
              "Clean",
              async () => {
                const minutes = Math.max(0, Number.parseInt(cleanGrace.value || "0", 10) || 0);
                const r = await api(`/api/admin/jobs/queue/${encodeURIComponent(name)}/clean`, {
                  method: "POST",
                  body: { status: cleanStatus.value, graceMs: minutes * 60000, limit: 10000 },
                });
                flash(`Removed ${num(r.removed)} ${cleanStatus.value} record${r.removed === 1 ? "" : "s"}.`);
                await refresh();
              },
              () => `Delete up to 10 000 ${cleanStatus.value} records of ${name} that finished more than ${cleanGrace.value || 0} minutes ago?`,
            ),
          ),
        ]
      : null;

    function renderActions() {
      fill(
        actions,
        ...[
          paused === false
            ? actionButton("Pause", async () => {
                const r = await api(`/api/admin/jobs/queue/${encodeURIComponent(name)}/pause`, { method: "POST" });
                paused = r.paused;
                renderState();
                flash(`${name} is paused: running jobs finish, no new job starts.`);
              })
            : null,
          paused === true
            ? actionButton("Resume", async () => {
                const r = await api(`/api/admin/jobs/queue/${encodeURIComponent(name)}/resume`, { method: "POST" });
                paused = r.paused;
                renderState();
                flash(`${name} takes jobs again.`);
              })
            : null,
          h("a", { href: `/jobs?queue=${encodeURIComponent(name)}` }, "Jobs"),
          h("a", { href: `/dead-letters?queue=${encodeURIComponent(name)}` }, "Dead letters"),
        ].filter(Boolean),
      );
    }
    function renderState() {
      fill(stateBox, status(paused ? "paused" : "running"));
      renderActions();
    }
    async function refresh() {
      const [st, latest] = await Promise.all([
        api(`/api/admin/jobs/queue/${encodeURIComponent(name)}/stats`, { signal: v.signal }),
        api(`/api/admin/jobs?queue=${encodeURIComponent(name)}&limit=10`, { signal: v.signal }),
      ]);
      if (v.closed) return;
      if (st.paused !== paused) {
        paused = st.paused;
        renderState();
      }
      const link = (key, s) => card(key[0].toUpperCase() + key.slice(1), num(st[key]), s, `/jobs?queue=${encodeURIComponent(name)}&status=${s}`);
      fill(
        cards,
        link("waiting", "PENDING"),
        link("active", "RUNNING"),
        link("delayed", "DELAYED"),
        link("retrying", "RETRYING"),
        link("failed", "FAILED"),
        link("completed", "COMPLETED"),
        link("cancelled", "CANCELLED"),
      );
      fill(recent, jobRows(latest.items, "No job in this queue."));
    }

    head.append(stateBox);
    page(`Queue ${name}`, head, actions, cards, h("h2", {}, "Newest jobs"), recent, cleanForm);
    v.poll(3000, refresh);
  }

  // ---------------------------------------------------------------- dead letters

  async function deadLetters(q) {
    const v = newView();
    const tabs = h("nav", { class: "tabs", "aria-label": "Queues" });
    const content = h("div", {}, h("p", { class: "muted" }, "Loading…"));
    page("Dead letters", h("h1", {}, "Dead letters"), tabs, content);
    let stats;
    try {
      stats = await api("/api/admin/queues", { signal: v.signal });
    } catch (e) {
      failed(e);
      return;
    }
    if (v.closed) return;
    const names = stats.map((s) => s.queue).sort();
    const withFailures = stats.filter((s) => s.failed > 0).map((s) => s.queue).sort();
    const queue = q.get("queue") || withFailures[0] || names[0];
    fill(
      tabs,
      ...names.map((n) => h("a", { href: `/dead-letters?queue=${encodeURIComponent(n)}`, "aria-current": n === queue ? "page" : null }, n)),
    );
    if (!queue) {
      fill(content, h("p", { class: "muted" }, "No queue is configured."));
      return;
    }
    v.poll(5000, async () => {
      const letters = await api(`/api/admin/dlq/${encodeURIComponent(queue)}?limit=100`, { signal: v.signal });
      if (v.closed) return;
      fill(
        content,
        h(
          "div",
          { class: "actions" },
          h("span", { class: "muted" }, letters.length >= 100 ? `The oldest 100 dead letters of ${queue}` : `${letters.length} dead letter${letters.length === 1 ? "" : "s"} in ${queue}`),
          letters.length
            ? actionButton(
                "Replay",
                async () => {
                  const r = await api(`/api/admin/dlq/${encodeURIComponent(queue)}/replay`, { method: "POST" });
                  navigate(`/dead-letters?queue=${encodeURIComponent(queue)}`, true);
                  flash(`${num(r.replayed)} job${r.replayed === 1 ? "" : "s"} of ${queue} replayed.`);
                },
                `Replay every dead letter of ${queue} (each FAILED job runs again)?`,
              )
            : null,
        ),
        table(
          [
            ["Job", (d) => jobLink(d.jobId)],
            ["Type", (d) => d.jobType],
            ["Attempts", (d) => d.attempts, "num"],
            ["Failed", (d) => when(d.failedAt)],
            ["Error", (d) => clamp(d.error), "wrap"],
          ],
          letters,
          `No dead letter in ${queue}.`,
        ),
      );
    });
  }

  // ---------------------------------------------------------------- schedules

  function scheduled() {
    const v = newView();
    const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
    page("Scheduled jobs", h("h1", {}, "Scheduled jobs"), list);
    const setStatus = (s, value) => async () => {
      await api(`/api/admin/scheduled-jobs/${encodeURIComponent(s.id)}`, { method: "PATCH", body: { status: value } });
      flash(`${s.name} is ${SCHEDULE_STATUS[value]}.`);
      await refresh();
    };
    async function refresh() {
      const items = await api("/api/admin/scheduled-jobs", { signal: v.signal });
      if (v.closed) return;
      const cols = [
        ["Name", (s) => h("span", { title: s.description || "" }, h("strong", {}, s.name))],
        ["Queue", (s) => h("a", { href: `/queues/${encodeURIComponent(s.queueName)}` }, s.queueName)],
        ["Type", (s) => s.jobType],
        ["Cron", (s) => h("code", {}, s.cronExpression)],
        ["Time zone", (s) => s.timezone],
        ["Status", (s) => status(SCHEDULE_STATUS[s.status] || String(s.status))],
        ["Next run", (s) => when(s.nextRunAt)],
        ["Last run", (s) => [when(s.lastRunAt), s.lastJobId ? [" · job ", jobLink(s.lastJobId)] : null]],
      ];
      if (isAdmin()) {
        cols.push([
          "Actions",
          (s) =>
            h(
              "div",
              { class: "actions" },
              actionButton(
                "Trigger",
                async () => {
                  const job = await api(`/api/admin/scheduled-jobs/${encodeURIComponent(s.id)}/trigger`, { method: "POST" });
                  flash([`${s.name} enqueued job `, jobLink(job.id), "."]);
                  await refresh();
                },
                `Enqueue a job of ${s.name} now?`,
              ),
              s.status === 1
                ? actionButton("Disable", setStatus(s, 0), `Disable ${s.name}? It stops enqueuing jobs.`)
                : actionButton("Enable", setStatus(s, 1), `Enable ${s.name}? It enqueues from its next tick on.`),
            ),
        ]);
      }
      fill(list, table(cols, items, "No scheduled job."));
    }
    v.poll(10000, refresh);
  }

  // ---------------------------------------------------------------- workers

  function workers() {
    const v = newView();
    const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
    page("Workers", h("h1", {}, "Workers"), list);
    v.poll(5000, async () => {
      const items = await api("/api/admin/workers", { signal: v.signal });
      if (v.closed) return;
      fill(
        list,
        table(
          [
            ["Worker", (w) => h("code", {}, w.id)],
            ["Host", (w) => w.host],
            ["PID", (w) => w.pid, "num"],
            ["Queues", (w) => w.queues.join(", ")],
            ["Running", (w) => `${w.running} / ${w.concurrency}`, "num"],
            ["Started", (w) => when(w.startedAt)],
            ["Last heartbeat", (w) => when(w.lastHeartbeat)],
          ],
          items,
          "No worker is alive.",
        ),
      );
    });
  }

  // ---------------------------------------------------------------- authors, books, quotes

  /** A paginated list of `path` (keeps the `keep` filters of the page's URL). */
  function pagedList(title, path, keep, cols, empty, q, note) {
    const v = newView();
    const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
    page(title, h("h1", {}, title), note || null, list);
    const query = new URLSearchParams();
    for (const k of keep) if (q.get(k)) query.set(k, q.get(k));
    query.set("page", String(pageNumber(q)));
    query.set("limit", String(PAGE_SIZE));
    v.poll(15000, async () => {
      const data = await api(`${path}?${query}`, { signal: v.signal });
      if (v.closed) return;
      fill(list, table(cols, data.items, empty), pager(data.page, data.limit, data.total, new URLSearchParams(location.search)));
    });
  }
  const filterNote = (q, key, label, clear) => (q.get(key) ? h("p", { class: "muted" }, `${label} `, h("code", {}, q.get(key)), " · ", h("a", { href: clear }, "show all")) : null);

  function authors(q) {
    pagedList(
      "Authors",
      "/api/admin/authors",
      [],
      [
        ["Name", (a) => h("strong", {}, a.name)],
        ["Wikidata", (a) => a.wikidataId || ""],
        ["Born", (a) => a.birthDate || ""],
        ["Died", (a) => a.deathDate || ""],
        ["Countries", (a) => a.countries.join(", "), "wrap"],
        ["Books", (a) => h("a", { href: `/books?authorId=${encodeURIComponent(a.id)}` }, "Books")],
        ["Added", (a) => when(a.createdAt)],
      ],
      "No author yet.",
      q,
    );
  }
  function books(q) {
    pagedList(
      "Books",
      "/api/admin/books",
      ["authorId"],
      [
        ["Title", (b) => h("strong", {}, b.title), "wrap"],
        ["Author", (b) => (b.authorId ? h("a", { href: `/books?authorId=${encodeURIComponent(b.authorId)}`, class: "mono", title: b.authorId }, short(b.authorId)) : "")],
        ["Language", (b) => b.language || ""],
        ["Chapters", (b) => num(b.chapterCount), "num"],
        ["Words", (b) => num(b.wordCount), "num"],
        ["CEFR", (b) => b.cefrLevel || ""],
        ["Quotes", (b) => h("a", { href: `/quotes?bookId=${encodeURIComponent(b.id)}` }, "Quotes")],
        ["Added", (b) => when(b.createdAt)],
      ],
      "No book yet.",
      q,
      filterNote(q, "authorId", "Books of author", "/books"),
    );
  }
  function quotes(q) {
    pagedList(
      "Quotes",
      "/api/admin/quotes",
      ["bookId"],
      [
        ["Quote", (x) => x.text, "wrap"],
        ["Chapter", (x) => (x.chapter === null ? "" : x.chapter), "num"],
        ["Categories", (x) => x.categories.join(", ")],
        ["Translations", (x) => Object.keys(x.translations || {}).join(", ")],
        ["Book", (x) => h("a", { href: `/quotes?bookId=${encodeURIComponent(x.bookId)}`, class: "mono", title: x.bookId }, short(x.bookId))],
      ],
      "No quote yet.",
      q,
      filterNote(q, "bookId", "Quotes of book", "/quotes"),
    );
  }

  // ---------------------------------------------------------------- signing in and out

  function chrome(on) {
    $("nav").hidden = !on;
    $("who").hidden = !on;
    $("role").textContent = on ? role : "";
  }

  function signIn(message) {
    if (view) view.close();
    view = null;
    role = null;
    chrome(false);
    flash(null);
    document.title = "Sign in · Conveyor";
    const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
    const note = h("p", { id: "signin-message", class: message ? "error-text" : "muted", role: "alert" }, message || "");
    const button = h("button", { type: "submit" }, "Sign in");
    const form = h(
      "form",
      {},
      h("label", { for: "token" }, "Token", input),
      button,
      note,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const candidate = input.value.trim();
      if (!candidate) return;
      button.disabled = true;
      note.className = "muted";
      note.textContent = "Checking…";
      try {
        const res = await request("/api/admin/session", { bearer: candidate });
        if (res.status === 401 || res.status === 403) {
          note.className = "error-text";
          note.textContent = "This token was refused.";
          input.select();
          return;
        }
        if (!res.ok) throw await errorOf(res);
        const session = await res.json();
        sessionStorage.setItem(TOKEN_KEY, candidate);
        start(session.role);
      } catch (err) {
        note.className = "error-text";
        note.textContent = `The token could not be checked: ${err.message}`;
      } finally {
        button.disabled = false;
      }
    });
    fill(
      main,
      h(
        "section",
        { class: "signin panel" },
        h("h1", {}, "Sign in"),
        h("p", { class: "muted" }, "Enter an admin or a viewer token of this Conveyor. It is kept in this tab only."),
        form,
      ),
    );
    input.focus();
  }

  function refused() {
    sessionStorage.removeItem(TOKEN_KEY);
    queueNames = null;
    signIn("This token was refused.");
  }

  function start(sessionRole) {
    role = sessionRole === "admin" ? "admin" : "viewer";
    chrome(true);
    route();
  }

  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    queueNames = null;
    signIn(null);
  });

  async function boot() {
    if (!token()) {
      signIn(null);
      return;
    }
    try {
      const session = await api("/api/admin/session");
      start(session.role);
    } catch (e) {
      if (e.status === 401) return; // refused() showed the sign-in
      fill(main, h("p", { class: "notice" }, `The API cannot be reached: ${e.message} `), h("button", { type: "button", onclick: boot }, "Try again"));
    }
  }
  boot();
})();
