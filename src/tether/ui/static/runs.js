// Running runs in the table update live: their status and last metric values arrive as
// server-sent events until none is running.
const table = document.querySelector("[data-live]");
const running = [...document.querySelectorAll("tr[data-status='running']")];
function shown(value) {
  if (typeof value === "string") return value === "NaN" ? "NaN" : value.startsWith("-") ? "-∞" : "∞";
  return Number(value.toPrecision(6)).toString();
}
if (table && running.length) {
  const ids = running.map((tr) => tr.dataset.run).join(",");
  const source = new EventSource(`${table.dataset.live}?ids=${encodeURIComponent(ids)}`);
  source.onmessage = (event) => {
    for (const run of JSON.parse(event.data).runs) {
      const row = document.querySelector(`tr[data-run="${CSS.escape(run.id)}"]`);
      if (!row) continue;
      row.dataset.status = run.status;
      const badge = row.querySelector(".status");
      badge.textContent = run.status;
      badge.className = `status status-${run.status}`;
      for (const cell of row.querySelectorAll("td[data-metric]")) {
        const value = run.metrics[cell.dataset.metric];
        if (value !== undefined) cell.textContent = shown(value);
      }
    }
  };
  source.addEventListener("done", () => source.close());
  source.onerror = () => source.close();
}
