// DOM helpers, formatting, tables, messages, confirmations and action buttons.

import { isAdmin } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const PRIORITY_NAMES = { 1: "LOW", 5: "NORMAL", 10: "HIGH", 20: "CRITICAL" };
export const PAGE_SIZE = 20;

export const $ = (id) => document.getElementById(id);
export const main = $("main");

// ---------------------------------------------------------------- DOM helpers

/** h("a", {href: "/", class: "x", onclick: f}, "text", child, [more]) */
export function h(tag, attrs, ...children) {
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
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}
/** Replaces el's children (flattening arrays, skipping null and false). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}
export function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}
export const num = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "—");
const pad = (n) => String(n).padStart(2, "0");
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const d = new Date(iso);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h("time", { datetime: iso, title: ago(d) }, text);
}
export function ago(d) {
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const abs = Math.abs(s);
  const t = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 86400 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return s >= 0 ? `${t} ago` : `in ${t}`;
}
export function ms(n) {
  if (typeof n !== "number") return "—";
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`;
}
export const status = (s) => h("span", { class: `status s-${s}` }, s);
// The end of an id: UUIDv7 ids begin with their time, so their ends differ.
export const short = (id) => String(id).slice(-8);
export const jobLink = (id) => h("a", { href: `/jobs/${encodeURIComponent(id)}`, class: "mono", title: id }, short(id));
export const priority = (p) => (PRIORITY_NAMES[p] ? `${p} (${PRIORITY_NAMES[p]})` : String(p));
export const json = (v) => h("pre", {}, JSON.stringify(v, null, 2));
/** Long text in a cell: three lines at most, the whole of it on hover. */
export const clamp = (text) => (text ? h("div", { class: "clamp", title: text }, text) : "");

/** A table in a box that scrolls sideways on its own. cols: [label, cell(row), class?] */
export function table(cols, rows, empty) {
  const head = h("tr", {}, cols.map(([label, , cls]) => h("th", { class: cls, scope: "col" }, label)));
  const body = rows.length
    ? rows.map((row) => h("tr", {}, cols.map(([, cell, cls]) => h("td", { class: cls }, cell(row)))))
    : [h("tr", {}, h("td", { class: "empty", colspan: cols.length }, empty || "Nothing here."))];
  return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
}

// ---------------------------------------------------------------- messages

let flashTimer = 0;
export function flash(message, kind) {
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
export function failed(e) {
  if (!e || e.name === "AbortError" || e.status === 401) return;
  flash(e.message || String(e), "error");
}
export function page(title, ...content) {
  document.title = `${title} · Conveyor`;
  fill(main, ...content.flat());
}

/** Asks first; runs `action` only after "Confirm". */
export function confirmFirst(message, action) {
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
export function actionButton(label, run, ask) {
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

export function pager(pageNo, limit, total, base) {
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
export function pageNumber(q) {
  const n = Number.parseInt(q.get("page") || "1", 10);
  return Number.isFinite(n) && n >= 1 ? n : 1;
}

export function card(label, value, sub, href) {
  return h(
    "div",
    { class: "card" },
    h("div", { class: "label" }, label),
    href ? h("a", { class: "value", href }, value) : h("div", { class: "value" }, value),
    sub ? h("div", { class: "sub" }, sub) : null,
  );
}
