// The lineage graph: cytoscape with a dagre layout (left to right, in the order things were
// made). A run opens its page; data opens its own lineage. The list under the graph holds the
// same links for a keyboard or a screen reader.
function draw() {
  const box = document.getElementById("graph");
  const nodes = JSON.parse(box.dataset.nodes);
  const edges = JSON.parse(box.dataset.edges);
  const project = box.dataset.project;
  cytoscape.use(cytoscapeDagre);
  const cy = cytoscape({
    container: box,
    elements: [
      ...nodes.map((n) => ({ data: { ...n, root: n.id === box.dataset.root ? "yes" : "no" } })),
      ...edges.map((e, i) => ({ data: { id: `e${i}`, ...e } })),
    ],
    style: [
      { selector: "node", style: { label: "data(label)", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4, "text-wrap": "ellipsis", "text-max-width": 140 } },
      { selector: "node[kind = 'run']", style: { shape: "round-rectangle", "background-color": "#0b57d0", width: 26, height: 18 } },
      { selector: "node[kind = 'data']", style: { shape: "ellipse", "background-color": "#1a7f37", width: 16, height: 16 } },
      { selector: "node[root = 'yes']", style: { "border-width": 3, "border-color": "#9a6700" } },
      { selector: "edge", style: { width: 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle", "line-color": "#8c959f", "target-arrow-color": "#8c959f" } },
    ],
    layout: { name: "dagre", rankDir: "LR", nodeSep: 24, rankSep: 70 },
  });
  if (cy.zoom() > 1.2) {
    cy.zoom(1.2);
    cy.center();
  }
  cy.on("tap", "node", (event) => {
    const n = event.target.data();
    const target = n.kind === "run"
      ? `/p/${project}/runs/${encodeURIComponent(n.run)}`
      : `/p/${project}/lineage?object=${encodeURIComponent(n.object)}`;
    window.location.assign(target);
  });
  box.dataset.drawn = String(cy.nodes().length);
}
if (typeof cytoscape === "undefined") window.addEventListener("load", draw);
else draw();
