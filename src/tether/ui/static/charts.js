// Metric charts. A figure with data-src charts one run's metric; one with data-runs overlays
// the metric of several runs (their steps joined). Each asks the server for its pixel width:
// raw points, or an M4 reduction. Zooming (drag to select) asks again for the visible range,
// so a zoomed chart is exact. NaN and infinities come apart as marks, drawn as ticks.
const COLOURS = ["#0b57d0", "#b42318", "#1a7f37", "#9a6700", "#8250df", "#0a7ea4", "#bf3989", "#57606a"];
const charts = [];

function sources(figure) {
  if (figure.dataset.runs === undefined) return [[figure.dataset.src, figure.dataset.key]];
  const names = JSON.parse(figure.dataset.names || "[]"); // JSON: a name may hold any character
  return figure.dataset.runs.split(" ").filter(Boolean).map((id, i) => [
    `${figure.dataset.base}${encodeURIComponent(id)}/metrics?key=${encodeURIComponent(figure.dataset.key)}`,
    names[i] || id.slice(0, 8),
  ]);
}

async function fetchOne(src, width, start, end) {
  const url = new URL(src, window.location.origin);
  url.searchParams.set("width", String(width));
  if (start !== undefined) url.searchParams.set("start", String(start));
  if (end !== undefined) url.searchParams.set("end", String(end));
  const answer = await fetch(url, { credentials: "same-origin" });
  if (!answer.ok) throw new Error(`could not load (${answer.status})`);
  return answer.json();
}

async function load(figure, start, end) {
  const plot = figure.querySelector(".plot");
  const width = Math.max(100, Math.round(plot.clientWidth || 600));
  let parts;
  try {
    parts = await Promise.all(sources(figure).map(([src]) => fetchOne(src, width, start, end)));
  } catch (err) {
    figure.querySelector(".chart-note").textContent = err.message;
    return null;
  }
  const data = parts.length === 1
    ? [parts[0].steps, parts[0].values]
    : uPlot.join(parts.map((p) => [p.steps, p.values]));
  return {
    data,
    total: parts.reduce((n, p) => n + p.total, 0),
    reduced: parts.some((p) => p.reduced),
    shown: data[0].length,
    marks: parts.flatMap((p) => p.marks),
  };
}

function note(figure, got) {
  const parts = [`${got.total.toLocaleString()} point${got.total === 1 ? "" : "s"}`];
  if (got.reduced) parts.push(`reduced to ${got.shown.toLocaleString()} (M4)`);
  if (got.marks.length) parts.push(`${got.marks.length} NaN/∞ marked`);
  figure.querySelector(".chart-note").textContent = parts.join(" · ");
}

function marksPlugin(getMarks) {
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.fillStyle = "#b42318";
        for (const m of getMarks()) {
          const x = u.valToPos(m.step, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          const y = m.value === "-Infinity" ? u.bbox.top + u.bbox.height - 6 : u.bbox.top;
          ctx.fillRect(x - 1, y, 2, 6);
        }
        ctx.restore();
      },
    },
  };
}

async function draw(figure) {
  const got = await load(figure);
  if (got === null) return;
  let marks = got.marks;
  note(figure, got);
  const plot = figure.querySelector(".plot");
  const reset = figure.querySelector(".reset");
  let asking = 0;
  const series = [{ label: "step" }].concat(
    sources(figure).map(([, label], i) => ({ label, stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: true })),
  );
  const opts = {
    width: Math.max(100, plot.clientWidth),
    height: 240,
    scales: { x: { time: false } },
    series,
    plugins: [marksPlugin(() => marks)],
    hooks: {
      setSelect: [
        async (u) => {
          if (u.select.width < 2) return;
          const start = u.posToVal(u.select.left, "x");
          const end = u.posToVal(u.select.left + u.select.width, "x");
          const mine = ++asking;
          const zoomed = await load(figure, start, end);
          if (zoomed === null || mine !== asking) return;
          marks = zoomed.marks;
          note(figure, zoomed);
          u.setData(zoomed.data, false);
          u.setScale("x", { min: start, max: end });
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          reset.hidden = false;
          figure.dataset.zoomed = String(zoomed.total);
        },
      ],
    },
    cursor: { drag: { x: true, y: false, setScale: false } },
  };
  const chart = new uPlot(opts, got.data, plot);
  charts.push([figure, chart]);
  figure.dataset.drawn = String(got.total);
  reset.addEventListener("click", async () => {
    const again = await load(figure);
    if (again === null) return;
    marks = again.marks;
    note(figure, again);
    chart.setData(again.data);
    reset.hidden = true;
    delete figure.dataset.zoomed;
  });
}

window.addEventListener("resize", () => {
  for (const [figure, chart] of charts) {
    chart.setSize({ width: Math.max(100, figure.querySelector(".plot").clientWidth), height: 240 });
  }
});

function start() {
  for (const figure of document.querySelectorAll("figure.chart:not(.live)")) draw(figure);
}
if (typeof uPlot === "undefined") window.addEventListener("load", start);
else start();
