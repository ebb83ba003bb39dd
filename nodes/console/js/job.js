// One job: state, attempts, executor, timings, last error; cancel it, download its result.

import { api, send, ApiError } from "./api.js";
import { h, setText, badge, updateBadge, dateTime, duration } from "./dom.js";

const ENDED = new Set(["succeeded", "failed", "cancelled", "expired"]);

export function mount(main, params, { poll, report }) {
  const id = params.get("id");
  const state = badge("state", "queued");
  state.id = "job-state";
  const fields = {};
  const detail = h("dl", { class: "detail", id: "job-detail" });
  const row = (key, label) => {
    fields[key] = h("dd", { "data-field": key, text: "–" });
    detail.append(h("dt", { text: label }), fields[key]);
  };
  row("pool", "Pool");
  row("handler", "Handler");
  row("attempt", "Attempt");
  row("executor", "Executor");
  row("created", "Accepted");
  row("updated", "Last change");
  row("took", "Time so far");
  row("priority", "Priority");
  row("ref", "Reference");
  row("output", "Output");
  row("trace", "Trace id");
  const error = h("pre", { class: "error-box", id: "job-error", hidden: true });
  const cancel = h("button", { type: "button", class: "danger", id: "cancel", text: "Cancel job", disabled: true });
  const download = h("button", { type: "button", id: "download", text: "Download result", disabled: true });
  const said = h("p", { class: "muted", id: "job-said", role: "status" });
  main.append(
    h("p", {}, h("a", { href: "#/jobs", text: "← Jobs" })),
    h("h2", {}, "Job ", h("span", { class: "id", text: id }), " ", state),
    h("div", { class: "actions" }, cancel, download),
    said,
    detail,
    h("h3", { text: "Last error" }),
    error,
  );
  const noError = h("p", { class: "muted", text: "None." });
  main.append(noError);

  let job = null;

  function render() {
    updateBadge(state, "state", job.state);
    setText(fields.pool, job.pool);
    setText(fields.handler, job.handler);
    setText(fields.attempt, `${job.attempt} of at most ${job.max_attempts}`);
    setText(fields.executor, job.executor || "–");
    setText(fields.created, dateTime(job.created_at_ms));
    setText(fields.updated, dateTime(job.updated_at_ms));
    const end = ENDED.has(job.state) ? job.updated_at_ms : Date.now();
    setText(fields.took, `${duration(Math.max(0, end - job.created_at_ms))}${ENDED.has(job.state) ? " (accepted to end)" : ""}`);
    setText(fields.priority, job.priority);
    const m = job.metadata;
    setText(fields.ref, [m.project_id, m.ref_type, m.ref_id].filter(Boolean).join(" · ") || "–");
    setText(fields.output, job.output_len != null ? `${job.output_len} bytes` : "–");
    setText(fields.trace, job.trace_id || "– (submitted with traces off)");
    error.hidden = !job.last_error;
    noError.hidden = Boolean(job.last_error);
    setText(error, job.last_error || "");
    cancel.disabled = ENDED.has(job.state);
    download.disabled = job.state !== "succeeded";
  }

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const answer = await api(`/api/jobs/${id}`, { method: "DELETE" });
      setText(said, `Cancelled: the job is ${answer.state}.`);
    } catch (e) {
      setText(said, `Not cancelled: ${e.message}`);
    }
  });

  download.addEventListener("click", async () => {
    const response = await send(`/api/jobs/${id}/result`);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      setText(said, `No result: ${body.error?.message || response.status}`);
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const a = h("a", { href: url, download: `${id}.out` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    setText(said, "Result downloaded.");
  });

  poll(1000, async () => {
    try {
      job = await api(`/api/jobs/${id}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        setText(said, `No job ${id} in the store.`);
        report(null);
        return;
      }
      throw e;
    }
    render();
  });
}
