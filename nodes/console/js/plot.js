// A small SVG line plot over a time window, updated in place (paths change, the
// element stays), with markers for scaling decisions on the same time axis.

import { h, setAttr, setText, duration } from "./dom.js";

const WIDTH = 600;
const HEIGHT = 100;

/**
 * A plot titled `title` of `series` ([{key, label}]): returns its element and
 * `update(from, to, values, markers)` where `values[key]` is [[t, v], …] and
 * `markers` is [{t, text}].
 */
export function linePlot(title, series, name) {
  const svg = h("svg:svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    preserveAspectRatio: "none",
    role: "img",
    class: `plot-${name}`,
  });
  const svgTitle = h("svg:title", { text: title });
  svg.append(svgTitle, h("svg:line", { class: "axis", x1: 0, y1: HEIGHT - 1, x2: WIDTH, y2: HEIGHT - 1 }));
  const markers = h("svg:g", { class: "markers" });
  svg.append(markers);
  const paths = {};
  for (const s of series) {
    paths[s.key] = h("svg:path", { class: `series-${s.key}`, d: "", "data-peak": 0, "data-points": 0 });
    svg.append(paths[s.key]);
  }
  const scale = h("span", { class: "scale" });
  const caption = h(
    "figcaption",
    {},
    h("strong", { text: title }),
    series.map((s) => h("span", {}, h("span", { class: `key series-${s.key}`, "aria-hidden": "true" }), s.label)),
    scale,
  );
  const el = h("figure", { class: "plot" }, caption, svg);

  function update(from, to, values, marks) {
    const span = Math.max(1, to - from);
    let peak = 1;
    for (const s of series) for (const [, v] of values[s.key] || []) peak = Math.max(peak, v);
    const x = (t) => (((t - from) / span) * WIDTH).toFixed(1);
    const y = (v) => (HEIGHT - 2 - (v / peak) * (HEIGHT - 6)).toFixed(1);
    const summary = [];
    for (const s of series) {
      const points = (values[s.key] || []).filter(([t]) => t >= from);
      let d = "";
      points.forEach(([t, v], i) => {
        d += i === 0 ? `M${x(t)} ${y(v)}` : `H${x(t)}V${y(v)}`;
      });
      if (points.length) d += `H${x(to)}`;
      setAttr(paths[s.key], "d", d);
      setAttr(paths[s.key], "data-peak", points.reduce((m, [, v]) => Math.max(m, v), 0));
      setAttr(paths[s.key], "data-points", points.length);
      const last = points.length ? points[points.length - 1][1] : "–";
      summary.push(`${s.label} ${last}`);
    }
    setText(scale, `0–${peak} · last ${duration(Math.round((to - from) / 1000) * 1000)}`);
    setText(svgTitle, `${title}: ${summary.join(", ")}`);
    const visible = marks.filter((m) => m.t >= from);
    while (markers.children.length > visible.length) markers.lastChild.remove();
    visible.forEach((m, i) => {
      let g = markers.children[i];
      if (!g) {
        g = h("svg:g", { class: "marker" }, h("svg:title"), h("svg:line", { y1: 0, y2: HEIGHT }));
        markers.append(g);
      }
      const line = g.querySelector("line");
      setAttr(line, "x1", x(m.t));
      setAttr(line, "x2", x(m.t));
      setText(g.querySelector("title"), m.text);
    });
  }

  return { el, update };
}
