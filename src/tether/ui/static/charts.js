// Metric charts: each figure fetches its metric for its pixel width; the server sends raw
// points or an M4 reduction. Zooming (drag to select) asks again for the visible range, so a
// zoomed chart is exact. NaN and infinities come apart as marks and are drawn as ticks.
const charts = [];

function note(figure, data) {
  const parts = [`${data.total.toLocaleString()} points`];
  if (data.reduced) parts.push(`reduced to ${data.steps.length.toLocaleString()} (M4)`);
  if (data.marks.length) parts.push(`${data.marks.length} NaN/∞ marked`);
  figure.querySelector(".chart-note").textContent = parts.join(" · ");
}

async function load(figure, start, end) {
  const plot = figure.querySelector(".plot");
  const width = Math.max(100, Math.round(plot.clientWidth || 600));
  const url = new URL(figure.dataset.src, window.location.origin);
  url.searchParams.set("width", String(width));
  if (start !== undefined) url.searchParams.set("start", String(start));
  if (end !== undefined) url.searchParams.set("end", String(end));
  const answer = await fetch(url, { credentials: "same-origin" });
  if (!answer.ok) {
    figure.querySelector(".chart-note").textContent = `could not load (${answer.status})`;
    return null;
  }
  return answer.json();
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
  const data = await load(figure);
  if (data === null) return;
  let marks = data.marks;
  note(figure, data);
  const plot = figure.querySelector(".plot");
  const reset = figure.querySelector(".reset");
  let asking = 0;
  const opts = {
    width: Math.max(100, plot.clientWidth),
    height: 240,
    scales: { x: { time: false } },
    series: [{ label: "step" }, { label: figure.dataset.key, stroke: "#0b57d0", width: 1.5 }],
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
          u.setData([zoomed.steps, zoomed.values], false);
          u.setScale("x", { min: start, max: end });
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          reset.hidden = false;
          figure.dataset.zoomed = String(zoomed.total);
        },
      ],
    },
    cursor: { drag: { x: true, y: false, setScale: false } },
  };
  const chart = new uPlot(opts, [data.steps, data.values], plot);
  charts.push([figure, chart]);
  figure.dataset.drawn = String(data.total);
  reset.addEventListener("click", async () => {
    const again = await load(figure);
    if (again === null) return;
    marks = again.marks;
    note(figure, again);
    chart.setData([again.steps, again.values]);
    reset.hidden = true;
  });
}

window.addEventListener("resize", () => {
  for (const [figure, chart] of charts) {
    chart.setSize({ width: Math.max(100, figure.querySelector(".plot").clientWidth), height: 240 });
  }
});

function start() {
  for (const figure of document.querySelectorAll("figure.chart")) draw(figure);
}
if (typeof uPlot === "undefined") window.addEventListener("load", start);
else start();
