// Jobs: newest first, filtered by state and pool, a page at a time (the store pages by
// its index with a cursor), refreshed in place.

import { api } from "./api.js";
import { h, setText, syncChildren, badge, updateBadge, clock } from "./dom.js";

const STATES = ["queued", "running", "succeeded", "failed", "cancelled", "expired"];
const PAGE = 50;

/** A job's row: id as a link to its page, state, pool, handler, attempt, times. */
export function jobRow(job) {
  return h(
    "tr",
    { "data-job-id": job.id },
    h("td", { class: "id" }, h("a", { href: `#/jobs/${job.id}` })),
    h("td", {}, badge("state", job.state)),
    h("td"),
    h("td"),
    h("td", { class: "num" }),
    h("td", { class: "hide-narrow" }),
    h("td", { class: "hide-narrow" }),
  );
}

/** Refreshes a row made by `jobRow`. */
export function updateJobRow(tr, job) {
  const [id, state, pool, handler, attempt, created, updated] = tr.children;
  setText(id.firstChild, job.id);
  updateBadge(state.firstChild, "state", job.state);
  setText(pool, job.pool);
  setText(handler, job.handler);
  setText(attempt, `${job.attempt} / ${job.max_attempts}`);
  setText(created, clock(job.created_at_ms));
  setText(updated, clock(job.updated_at_ms));
}

/** The head of a job table. */
export function jobHead() {
  const cols = [["Job"], ["State"], ["Pool"], ["Handler"], ["Attempt", "num"], ["Created", "hide-narrow"], ["Changed", "hide-narrow"]];
  return h("thead", {}, h("tr", {}, cols.map(([t, c]) => h("th", { scope: "col", class: c, text: t }))));
}

export function mount(main, params, { poll }) {
  const state = h("select", { id: "filter-state", name: "state" }, h("option", { value: "", text: "any" }), STATES.map((s) => h("option", { value: s, text: s })));
  const pool = h("select", { id: "filter-pool", name: "pool" }, h("option", { value: "", text: "any" }));
  state.value = params.get("state") || "";
  const chosenPool = params.get("pool") || "";
  const filters = h("form", { class: "filters", role: "search" }, h("label", {}, "State", state), h("label", {}, "Pool", pool));
  const body = h("tbody", { id: "job-rows" });
  const empty = h("p", { class: "muted", text: "No job matches.", hidden: true });
  const newer = h("button", { type: "button", id: "page-newer", text: "← Newer" });
  const older = h("button", { type: "button", id: "page-older", text: "Older →" });
  const where = h("span", { class: "muted", id: "page-where", "aria-live": "polite" });
  main.append(
    h("h2", { text: "Jobs" }),
    filters,
    h("div", { class: "table-wrap" }, h("table", {}, jobHead(), body)),
    empty,
    h("div", { class: "pager" }, newer, older, where),
  );

  // cursors[i] is the cursor of page i (null for the first page).
  let cursors = [null];
  let next = null;
  let generation = 0;

  async function load() {
    const mine = generation;
    const query = new URLSearchParams({ limit: PAGE });
    if (state.value) query.set("state", state.value);
    if (pool.value) query.set("pool", pool.value);
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/api/jobs?${query}`);
    if (mine !== generation) return;
    next = page.next;
    syncChildren(body, page.jobs, (j) => j.id, jobRow, updateJobRow);
    empty.hidden = page.jobs.length > 0;
    newer.disabled = cursors.length === 1;
    older.disabled = !next;
    setText(where, `page ${cursors.length}`);
  }

  const restart = () => {
    generation += 1;
    cursors = [null];
    const query = new URLSearchParams();
    if (state.value) query.set("state", state.value);
    if (pool.value) query.set("pool", pool.value);
    history.replaceState(null, "", `#/jobs${query.size ? `?${query}` : ""}`);
    load();
  };
  state.addEventListener("change", restart);
  pool.addEventListener("change", restart);
  older.addEventListener("click", () => {
    if (!next) return;
    generation += 1;
    cursors.push(next);
    load();
  });
  newer.addEventListener("click", () => {
    if (cursors.length === 1) return;
    generation += 1;
    cursors.pop();
    load();
  });

  if (chosenPool) pool.append(h("option", { value: chosenPool, text: chosenPool }));
  pool.value = chosenPool;
  api("/api/capacity").then((capacity) => {
    for (const p of capacity.slots) {
      if (p.name !== chosenPool) pool.append(h("option", { value: p.name, text: p.name }));
    }
  });
  poll(2000, load);
}
