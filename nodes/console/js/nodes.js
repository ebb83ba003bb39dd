// Nodes: every member this node knows, with role, address, status and since when.

import { api } from "./api.js";
import { h, setText, syncChildren, badge, updateBadge, dateTime, duration } from "./dom.js";

export function mount(main, _params, { poll }) {
  const leader = h("p", { class: "muted", id: "leader" });
  const body = h("tbody", { id: "node-rows" });
  const table = h(
    "table",
    {},
    h("caption", { class: "muted", text: "Status as this node sees it; since = when it first saw that status." }),
    h("thead", {}, h("tr", {}, ["Node", "Role", "Address", "Status", "Since"].map((t) => h("th", { scope: "col", text: t })))),
    body,
  );
  main.append(h("h2", { text: "Nodes" }), leader, h("div", { class: "table-wrap" }, table));

  poll(2000, async () => {
    const result = await api("/api/nodes");
    setText(leader, result.leader ? `Leader: ${result.leader.name} (epoch ${result.leader.epoch})` : "");
    syncChildren(
      body,
      result.nodes,
      (n) => n.name,
      (n) => h("tr", { "data-node": n.name }, h("td", { class: "id" }), h("td"), h("td", { class: "id" }), h("td", {}, badge("node", n.status)), h("td")),
      (tr, n) => {
        const [name, role, addr, status, since] = tr.children;
        setText(name, n.name);
        setText(role, n.role);
        setText(addr, n.addr);
        updateBadge(status.firstChild, "node", n.status);
        setText(since, n.since_ms ? `${dateTime(n.since_ms)} (${duration(Date.now() - n.since_ms)} ago)` : "–");
      },
    );
  });
}
