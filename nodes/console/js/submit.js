// Submit: upload documents to a pool and handler (one job each, multipart), then watch
// them until they end.

import { api } from "./api.js";
import { h, setText, syncChildren } from "./dom.js";
import { jobHead, jobRow, updateJobRow } from "./jobs.js";

const HANDLERS = ["echo", "sleep", "pdf-text", "image-normalize", "classify", "infer"];
const ENDED = new Set(["succeeded", "failed", "cancelled", "expired"]);
/** Jobs followed at most per refresh. */
const FOLLOW = 100;

// Submitted in this tab, newest first: {id, file, job}. Kept while the tab lives.
const watched = [];

export function mount(main, _params, { poll }) {
  const pool = h("select", { id: "submit-pool", name: "pool", required: true });
  const handler = h("input", { id: "submit-handler", name: "handler", list: "handlers", required: true, value: "echo", autocomplete: "off" });
  const handlers = h("datalist", { id: "handlers" }, HANDLERS.map((n) => h("option", { value: n })));
  const files = h("input", { id: "submit-files", name: "files", type: "file", multiple: true, required: true });
  const priority = h("input", { id: "submit-priority", name: "priority", type: "number", value: 0, step: 1 });
  const button = h("button", { type: "submit", class: "primary", id: "submit-go", text: "Submit" });
  const said = h("p", { id: "submit-said", role: "status", class: "muted" });
  const form = h(
    "form",
    { class: "submit-form", id: "submit-form" },
    h("label", {}, "Pool", pool),
    h("label", {}, "Handler", handler, handlers),
    h("label", {}, "Documents (one job each)", files),
    h("label", {}, "Priority", priority),
    button,
  );
  const body = h("tbody", { id: "submitted-rows" });
  const counts = h("p", { class: "muted", id: "submitted-counts", "aria-live": "polite" });
  main.append(
    h("h2", { text: "Submit documents" }),
    form,
    said,
    h("h3", { text: "Submitted from this tab" }),
    counts,
    h("div", { class: "table-wrap" }, h("table", {}, withFileColumn(jobHead()), body)),
  );

  api("/api/capacity").then((capacity) => {
    for (const p of capacity.slots) pool.append(h("option", { value: p.name, text: p.name }));
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    let accepted = 0;
    const refused = [];
    for (const file of files.files) {
      const data = new FormData();
      data.append("pool", pool.value);
      data.append("handler", handler.value.trim());
      if (priority.value) data.append("priority", priority.value);
      data.append("file", file, file.name);
      setText(said, `Uploading ${file.name}…`);
      try {
        const answer = await api("/api/jobs", { method: "POST", body: data });
        watched.unshift({ id: answer.id, file: file.name, job: null });
        accepted += 1;
      } catch (e) {
        refused.push(`${file.name}: ${e.message}`);
      }
      render();
    }
    setText(said, `${accepted} accepted${refused.length ? `; refused: ${refused.join("; ")}` : "."}`);
    files.value = "";
    button.disabled = false;
  });

  function render() {
    const shown = watched.filter((w) => w.job);
    syncChildren(
      body,
      shown,
      (w) => w.id,
      (w) => {
        const tr = jobRow(w.job);
        tr.prepend(h("td", { class: "file" }));
        return tr;
      },
      (tr, w) => {
        setText(tr.firstChild, w.file);
        const [, ...rest] = tr.children;
        const row = { children: rest };
        updateJobRow(row, w.job);
      },
    );
    const by = {};
    for (const w of shown) by[w.job.state] = (by[w.job.state] || 0) + 1;
    setText(counts, Object.entries(by).map(([s, n]) => `${n} ${s}`).join(" · ") || "Nothing yet.");
  }

  poll(1000, async () => {
    const open = watched.filter((w) => !w.job || !ENDED.has(w.job.state)).slice(0, FOLLOW);
    await Promise.all(
      open.map(async (w) => {
        w.job = await api(`/api/jobs/${w.id}`);
      }),
    );
    render();
  });
}

function withFileColumn(head) {
  head.firstChild.prepend(h("th", { scope: "col", text: "Document" }));
  return head;
}
