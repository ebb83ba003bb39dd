// Small DOM helpers: build elements, change only what changed (no flicker), format.

/** An element with attributes (`class`, `text`, `on…` handlers, others as attributes). */
export function h(tag, attrs = {}, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child);
  }
  return el;
}

/** Sets `el`'s text when it differs. */
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

/** Sets an attribute when it differs. */
export function setAttr(el, name, value) {
  const text = String(value);
  if (el.getAttribute(name) !== text) el.setAttribute(name, text);
}

/**
 * Makes `parent`'s children match `items` in order, keyed by `key(item)`: rows that
 * stay are updated in place by `update(el, item)`, new ones made by `create(item)`.
 */
export function syncChildren(parent, items, key, create, update) {
  const existing = new Map();
  for (const el of parent.children) existing.set(el.dataset.key, el);
  let at = 0;
  for (const item of items) {
    const k = String(key(item));
    let el = existing.get(k);
    if (el) existing.delete(k);
    else {
      el = create(item);
      el.dataset.key = k;
    }
    update(el, item);
    if (parent.children[at] !== el) parent.insertBefore(el, parent.children[at] || null);
    at += 1;
  }
  for (const el of existing.values()) el.remove();
}

const SHAPES = {
  queued: "◷", running: "▶", succeeded: "✔", failed: "✖", cancelled: "⊘", expired: "⌛",
  up: "●", unreachable: "◌", gone: "✖", known: "○",
};

/** A badge for a job or node state: a shape and the word, coloured by class. */
export function badge(kind, state) {
  const el = h("span", { class: "badge" }, h("span", { class: "shape", "aria-hidden": "true" }), h("span", { class: "word" }));
  updateBadge(el, kind, state);
  return el;
}

/** Changes a badge's state. */
export function updateBadge(el, kind, state) {
  if (el.dataset.state === state) return;
  el.dataset.state = state;
  el.className = `badge ${kind}-${state}`;
  el.querySelector(".shape").textContent = SHAPES[state] || "•";
  el.querySelector(".word").textContent = state;
}

/** `HH:MM:SS` of a Unix-millisecond time. */
export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

/** Date and time of a Unix-millisecond time. */
export function dateTime(ms) {
  return new Date(ms).toLocaleString([], { hour12: false });
}

/** A duration in milliseconds, for people. */
export function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Calls `work` now and then every `ms` after each call ends, until the returned stop. */
export function every(ms, work) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    try {
      await work();
    } finally {
      if (!stopped) timer = setTimeout(run, ms);
    }
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
