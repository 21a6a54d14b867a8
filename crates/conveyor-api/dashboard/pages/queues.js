// One queue: its counts, newest jobs, Pause / Resume and Clean.

import { isAdmin, api } from "../api.js";
import { h, fill, num, status, flash, page, actionButton, card } from "../ui.js";
import { newView } from "../view.js";
import { jobRows } from "./jobs.js";

const CLEANABLE = ["COMPLETED", "FAILED", "CANCELLED"];

export function queuePage(name) {
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
