// A running run's charts: each metric's newest value as the server's live view sends it
// (server-sent events, every 2 s), added while its step moves on. Once the run ends the page
// loads again and draws the whole history from the sealed record.
const box = document.querySelector(".charts[data-live]");

function drawOne(f) {
  if (typeof uPlot === "undefined") return;
  const plot = f.figure.querySelector(".plot");
  if (f.chart === null) {
    const opts = {
      width: Math.max(100, plot.clientWidth), height: 240, scales: { x: { time: false } },
      series: [{ label: "step" }, { label: f.figure.dataset.key, stroke: "#0b57d0", width: 1.5 }],
    };
    f.chart = new uPlot(opts, [f.steps, f.values], plot);
  } else {
    f.chart.setData([f.steps, f.values]);
  }
  f.figure.dataset.points = String(f.steps.length);
  const n = f.steps.length;
  f.figure.querySelector(".chart-note").textContent =
    `live · ${n} point${n === 1 ? "" : "s"} since this page opened`;
}

if (box) {
  const figures = [...box.querySelectorAll("figure.live")].map((figure) => {
    const step = Number(figure.dataset.step);
    const last = Number(figure.dataset.last);
    const known = Number.isFinite(step) && Number.isFinite(last);
    return { figure, steps: known ? [step] : [], values: known ? [last] : [], chart: null };
  });
  const ended = () => { source.close(); window.location.reload(); };
  const source = new EventSource(box.dataset.live);
  source.onmessage = (event) => {
    const run = JSON.parse(event.data).runs.find((r) => r.id === box.dataset.run);
    if (!run) return;
    for (const f of figures) {
      const value = run.metrics[f.figure.dataset.key];
      const step = (run.steps || {})[f.figure.dataset.key];
      if (typeof value !== "number" || typeof step !== "number") continue; // NaN, ∞: at the end
      if (f.steps.length && step <= f.steps[f.steps.length - 1]) continue;
      f.steps.push(step);
      f.values.push(value);
      drawOne(f);
    }
    if (run.status !== "running") ended();
  };
  source.addEventListener("done", ended);
  source.onerror = () => { // the stream ended (15 minutes at most) or broke: say so
    source.close();
    const said = document.getElementById("live-note");
    if (said) said.textContent = "The live view stopped: reload the page to see the run as it is now.";
  };
  figures.forEach(drawOne);
}
