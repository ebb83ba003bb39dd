// Overview: totals, then per pool its slots as a bar, queue, executors, plots of the
// last 15 minutes and the Supervisor's decisions on the same time axis.

import { api } from "./api.js";
import { h, setAttr, setText, syncChildren, clock, duration } from "./dom.js";
import { linePlot } from "./plot.js";

const TOTALS = [
  ["pools", "Pools"],
  ["capacity", "Slots"],
  ["used", "Slots used"],
  ["available", "Slots free"],
  ["pending", "Jobs waiting"],
  ["executors", "Executors"],
];

export function mount(main, _params, { poll }) {
  const totals = h("dl", { class: "totals", id: "totals" });
  const totalCells = {};
  for (const [key, label] of TOTALS) {
    totalCells[key] = h("dd", { "data-total": key, text: "–" });
    totals.append(h("div", {}, h("dt", { text: label }), totalCells[key]));
  }
  const pools = h("div", { class: "pools", id: "pools" });
  main.append(h("h2", { text: "Overview" }), totals, pools);

  let capacity = null;
  let history = null;
  let clockOffset = 0;

  function render() {
    if (!capacity) return;
    const byName = new Map((history?.pools || []).map((p) => [p.name, p]));
    const latest = (name) => {
      const samples = byName.get(name)?.samples || [];
      return samples[samples.length - 1];
    };
    let pending = 0;
    let executors = 0;
    for (const p of capacity.slots) {
      pending += latest(p.name)?.pending || 0;
      executors += latest(p.name)?.executors || 0;
    }
    setText(totalCells.pools, capacity.slots.length);
    setText(totalCells.capacity, capacity.totals.capacity);
    setText(totalCells.used, capacity.totals.used);
    setText(totalCells.available, capacity.totals.available);
    setText(totalCells.pending, history ? pending : "–");
    setText(totalCells.executors, history ? executors : "–");
    syncChildren(pools, capacity.slots, (p) => p.name, poolCard, (el, p) =>
      el.card.update(p, byName.get(p.name), latest(p.name), history, clockOffset),
    );
  }

  poll(1000, async () => {
    capacity = await api("/api/capacity");
    render();
  });
  poll(2000, async () => {
    history = await api("/api/history");
    clockOffset = history.now_ms - Date.now();
    history.since_ms = Math.min(history.now_ms - 60000, ...history.pools.map((p) => p.samples[0]?.at_ms ?? history.now_ms));
    render();
  });
}

/** The card of one pool; `el.card.update(…)` refreshes it in place. */
function poolCard(pool) {
  const note = h("span", { class: "pool-note" });
  const fill = h("div", { class: "bar-fill" });
  const bar = h("div", { class: "bar", role: "meter", "aria-valuemin": 0, "aria-label": `${pool.name}: slots used` }, fill);
  const barText = h("p", { class: "muted bar-text" });
  const fact = (label, key) => {
    const dd = h("dd", { "data-fact": key, text: "–" });
    return [h("dt", { text: label }), dd];
  };
  const queue = fact("queue", "queue");
  const execs = fact("executors", "executors");
  const free = fact("free slots", "free");
  const facts = h("dl", { class: "facts" }, h("div", {}, ...queue), h("div", {}, ...execs), h("div", {}, ...free));
  const pendingPlot = linePlot("Pending jobs", [{ key: "pending", label: "waiting" }], "pending");
  const slotsPlot = linePlot("Slots", [{ key: "used", label: "used" }, { key: "capacity", label: "capacity" }], "slots");
  const executorsPlot = linePlot(
    "Executors",
    [{ key: "executors", label: "running" }, { key: "target", label: "target" }],
    "executors",
  );
  const decisions = h("ol", { class: "decisions", "aria-label": `${pool.name}: scaling decisions, newest first` });
  const noDecisions = h("p", { class: "muted no-decisions", text: "No scaling decision in the last 15 minutes." });
  const el = h(
    "section",
    { class: "pool", "data-pool": pool.name, "aria-label": `pool ${pool.name}` },
    h("header", {}, h("h3", { text: pool.name }), note),
    bar,
    barText,
    facts,
    h("div", { class: "plots" }, pendingPlot.el, slotsPlot.el, executorsPlot.el),
    h("h4", { class: "muted", text: "Decisions" }),
    noDecisions,
    decisions,
  );

  function update(p, past, last, history, offset) {
    const zero = p.capacity === 0 && p.target === 0;
    const cold = past?.cold_start_ms;
    const coldText = cold != null ? `cold start ${duration(cold)}` : "";
    if (zero) {
      setText(note, `◌ scaled to zero${coldText ? ` · ${coldText} to the first job` : ""}`);
    } else if (p.capacity < p.target) {
      setText(note, `▲ scaling up${coldText ? ` · ${coldText}` : ""}`);
    } else {
      setText(note, coldText);
    }
    note.classList.toggle("zero", zero);
    const share = p.capacity > 0 ? Math.min(1, p.used / p.capacity) : 0;
    fill.style.width = `${(share * 100).toFixed(1)}%`;
    setAttr(bar, "aria-valuemax", p.capacity);
    setAttr(bar, "aria-valuenow", p.used);
    setAttr(bar, "aria-valuetext", `${p.used} of ${p.capacity} slots used`);
    setText(barText, `${p.used} / ${p.capacity} slots used · target ${p.target}`);
    setText(queue[1], last ? last.pending : "–");
    setText(execs[1], last ? `${last.executors} / ${last.executors_target}` : "–");
    setText(free[1], p.available);
    if (!history) return;
    // The window, or the node's life when shorter: a young node's plots are readable.
    const to = Date.now() + offset;
    const from = Math.max(to - history.window_secs * 1000, history.since_ms - history.interval_ms);
    const samples = past?.samples || [];
    const series = (f) => samples.map((s) => [s.at_ms, f(s)]);
    const mine = history.decisions.filter((d) => d.pool === p.name);
    const marks = mine.map((d) => ({ t: d.at_ms, text: `${clock(d.at_ms)} ${d.from} → ${d.to}: ${d.reason}` }));
    pendingPlot.update(from, to, { pending: series((s) => s.pending) }, marks);
    slotsPlot.update(from, to, { used: series((s) => s.slots_used), capacity: series((s) => s.slots_capacity) }, marks);
    executorsPlot.update(
      from,
      to,
      { executors: series((s) => s.executors), target: series((s) => s.executors_target) },
      marks,
    );
    noDecisions.hidden = mine.length > 0;
    syncChildren(
      decisions,
      [...mine].reverse(),
      (d) => `${d.at_ms}-${d.from}-${d.to}`,
      () => h("li", { class: "decision" }, h("time"), h("span", { class: "change" }), " ", h("span", { class: "reason" })),
      (li, d) => {
        const time = li.querySelector("time");
        setAttr(time, "datetime", new Date(d.at_ms).toISOString());
        setText(time, clock(d.at_ms));
        setText(li.querySelector(".change"), `${d.from} → ${d.to}:`);
        setText(li.querySelector(".reason"), d.reason);
      },
    );
  }

  el.card = { update };
  return el;
}
