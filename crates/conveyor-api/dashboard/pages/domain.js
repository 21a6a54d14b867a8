// The domain records: authors, books and quotes, a page at a time.

import { api } from "../api.js";
import { PAGE_SIZE, h, fill, num, when, short, table, page, pager, pageNumber } from "../ui.js";
import { newView } from "../view.js";

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

export function authors(q) {
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
export function books(q) {
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
export function quotes(q) {
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
