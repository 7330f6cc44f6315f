// The admin pages' one script: on the figures page, refreshes the figures from
// /admin/figures every few seconds (text only, never HTML from the server).

const REFRESH_MS = 3000;

function refreshFigures() {
  const total = document.querySelector("[data-figures-total]");
  const rows = document.querySelector("[data-figures-processes]");
  if (!total || !rows) return;
  const tick = async () => {
    try {
      const response = await fetch("/admin/figures", { credentials: "same-origin" });
      if (!response.ok) return; // signed out: the next page load goes to the sign-in page
      const figures = await response.json();
      for (const cell of total.querySelectorAll("[data-figure]")) {
        cell.textContent = String(figures[cell.dataset.figure]);
      }
      const fresh = figures.processes.map((p) => {
        const row = document.createElement("tr");
        row.dataset.node = String(p.node);
        const head = document.createElement("th");
        head.scope = "row";
        head.textContent = String(p.node);
        row.append(head);
        for (const value of [p.connections, p.waiting, p.chats, p.messages_per_sec]) {
          const cell = document.createElement("td");
          cell.textContent = String(value);
          row.append(cell);
        }
        return row;
      });
      rows.replaceChildren(...fresh);
    } catch {
      // The server is away for a moment: keep the last figures.
    }
  };
  setInterval(tick, REFRESH_MS);
}

refreshFigures();
