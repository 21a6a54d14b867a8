// Client routing (history API; every path it knows is also answered with this page by
// conveyor-api), signing in and out.

import { TOKEN_KEY, role, setRole, setQueueNames, onRefused, token, request, errorOf, api } from "./api.js";
import { $, main, h, fill, flash, page } from "./ui.js";
import { setRoute, newView, closeView, navigate } from "./view.js";
import { overview } from "./pages/overview.js";
import { jobList } from "./pages/jobs.js";
import { jobPage } from "./pages/job.js";
import { queuePage } from "./pages/queues.js";
import { deadLetters } from "./pages/dead_letters.js";
import { scheduled } from "./pages/scheduled.js";
import { workers } from "./pages/workers.js";
import { authors, books, quotes } from "./pages/domain.js";

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

function chrome(on) {
  $("nav").hidden = !on;
  $("who").hidden = !on;
  $("role").textContent = on ? role : "";
}

function signIn(message) {
  closeView();
  setRole(null);
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
  setQueueNames(null);
  signIn("This token was refused.");
}

function start(sessionRole) {
  setRole(sessionRole === "admin" ? "admin" : "viewer");
  chrome(true);
  route();
}

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  setQueueNames(null);
  signIn(null);
});

export async function boot() {
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

setRoute(route);
onRefused(refused);
