// A page's lifetime (its requests and timers) and navigation between pages.

import { failed } from "./ui.js";

let view = null; // the current page's timers and requests
let route = () => {}; // renders the page of the current URL (set by the router)

/** Sets what renders the current URL. */
export function setRoute(fn) {
  route = fn;
}

/** A page's lifetime: its requests are aborted and its timers stopped on leaving. */
export function newView() {
  if (view) view.close();
  const controller = new AbortController();
  const timers = new Set();
  const v = {
    signal: controller.signal,
    closed: false,
    close() {
      v.closed = true;
      controller.abort();
      timers.forEach(clearTimeout);
      timers.clear();
    },
    /** Runs fn now and then every `every` ms after it finished (skipped while hidden). */
    poll(every, fn) {
      const tick = async () => {
        if (v.closed) return;
        if (!document.hidden) {
          try {
            await fn();
          } catch (e) {
            if (!v.closed) failed(e);
          }
        }
        if (!v.closed) timers.add(setTimeout(tick, every));
      };
      return tick();
    },
    sleep(delay) {
      return new Promise((resolve) => timers.add(setTimeout(resolve, delay)));
    },
  };
  view = v;
  return v;
}

/** Leaves the current page (signing out). */
export function closeView() {
  if (view) view.close();
  view = null;
}

export function navigate(url, replace) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  route();
}
