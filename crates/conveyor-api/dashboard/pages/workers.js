// The live workers.

import { api } from "../api.js";
import { h, fill, when, table, page } from "../ui.js";
import { newView } from "../view.js";

export function workers() {
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
