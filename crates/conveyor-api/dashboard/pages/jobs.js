// The job list (filters and page in the URL) and the job table the queue page shares.

import { api, queues } from "../api.js";
import { PAGE_SIZE, h, fill, when, status, jobLink, priority, table, failed, page, pager, pageNumber } from "../ui.js";
import { newView, navigate } from "../view.js";

const STATUSES = ["PENDING", "DELAYED", "RUNNING", "RETRYING", "COMPLETED", "FAILED", "CANCELLED"];

export function jobRows(items, empty) {
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

export async function jobList(q) {
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
