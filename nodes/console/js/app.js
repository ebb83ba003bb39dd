// The console's shell: pages by the URL's hash (#/overview, #/nodes, #/jobs,
// #/jobs/<id>, #/submit), each polling the API while it is shown.

import { setLive } from "./api.js";
import { every, clock } from "./dom.js";
import * as overview from "./overview.js";
import * as nodes from "./nodes.js";
import * as jobs from "./jobs.js";
import * as job from "./job.js";
import * as submit from "./submit.js";

const PAGES = { overview, nodes, jobs, submit };
const TITLES = { overview: "Overview", nodes: "Nodes", jobs: "Jobs", job: "Job", submit: "Submit" };

let stops = [];

/** What a page gets: `poll(ms, work)` runs work now and every ms while shown. */
function context() {
  const report = (error) => {
    if (error) setLive(`the node did not answer: ${error.message}`, true);
    else setLive(`live · ${clock(Date.now())}`);
  };
  const poll = (ms, work) => {
    stops.push(
      every(ms, async () => {
        try {
          await work();
          report(null);
        } catch (error) {
          report(error);
        }
      }),
    );
  };
  return { poll, report };
}

function route() {
  for (const stop of stops) stop();
  stops = [];
  const hash = location.hash.replace(/^#\/?/, "") || "overview";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/");
  let name = parts[0];
  let page = PAGES[name];
  if (name === "jobs" && parts[1]) {
    name = "job";
    page = job;
    params.set("id", decodeURIComponent(parts[1]));
  }
  if (!page) {
    name = "overview";
    page = overview;
  }
  document.title = `${TITLES[name]} · Marie`;
  for (const a of document.querySelectorAll("nav a")) {
    const current = a.dataset.page === (name === "job" ? "jobs" : name);
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = document.getElementById("view");
  main.replaceChildren();
  main.dataset.page = name;
  page.mount(main, params, context());
}

window.addEventListener("hashchange", () => {
  route();
  document.getElementById("view").focus();
});
route();
