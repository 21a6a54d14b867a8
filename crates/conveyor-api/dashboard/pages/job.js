// One job: its fields, payload, result and executions, followed live through its event stream.

import { api, followEvents } from "../api.js";
import { h, fill, when, ms, status, short, jobLink, priority, json, clamp, table, flash, failed, page, actionButton } from "../ui.js";
import { newView } from "../view.js";

const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

export async function jobPage(id) {
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
