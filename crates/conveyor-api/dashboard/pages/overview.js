// The overview: counts, services, alerts, a throughput chart and every queue.

import { setQueueNames, api } from "../api.js";
import { h, fill, svg, num, ago, ms, status, table, page, card } from "../ui.js";
import { newView } from "../view.js";

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

export function overview() {
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
    setQueueNames(st.queues.map((q) => q.queue).sort());
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
