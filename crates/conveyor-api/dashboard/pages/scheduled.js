// The scheduled jobs: Trigger, Enable and Disable.

import { isAdmin, api } from "../api.js";
import { h, fill, when, status, jobLink, table, flash, page, actionButton } from "../ui.js";
import { newView } from "../view.js";

const SCHEDULE_STATUS = { 0: "disabled", 1: "enabled", 2: "paused" };

export function scheduled() {
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
