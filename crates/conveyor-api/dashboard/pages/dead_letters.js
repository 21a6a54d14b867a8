// A queue's dead letters and Replay.

import { api } from "../api.js";
import { h, fill, num, when, jobLink, clamp, table, flash, failed, page, actionButton } from "../ui.js";
import { newView, navigate } from "../view.js";

export async function deadLetters(q) {
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
