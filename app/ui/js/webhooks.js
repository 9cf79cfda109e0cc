// Webhook deliveries of an instance, the failed ones first to see, and replaying them.

import { api, enc } from "./api.js";
import { $, badge, el, showError, when } from "./dom.js";

let instance = null;

async function replay(positions) {
  showError($("#deliveries-error"), null);
  let count = 0;
  try {
    for (const position of positions) {
      const answer = await api(`/api/instances/${enc(instance.id)}/webhooks/replay`, {
        method: "POST", body: { fromPosition: position, toPosition: position },
      });
      count += answer.replaying;
    }
  } catch (error) {
    showError($("#deliveries-error"), error);
    return;
  }
  const result = $("#replay-result");
  result.textContent = `Replaying ${count} event${count === 1 ? "" : "s"}; new attempts appear below.`;
  result.hidden = false;
  await load();
}

function row(d) {
  const status = el("span");
  badge(status, d.status);
  const answer = d.lastError || (d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : "");
  return el("tr", { "data-status": d.status },
    el("td", {}, d.event, d.replay ? el("small", { class: "muted" }, " (replay)") : null),
    el("td", {}, status),
    el("td", {}, String(d.attempts)),
    el("td", {}, answer),
    el("td", {}, when(d.createdAt)),
    el("td", {}, d.status === "failed"
      ? el("button", { type: "button", class: "secondary", onclick: () => replay([d.position]) }, "Replay")
      : null),
  );
}

async function load() {
  const status = $("#delivery-filter").value;
  const query = status ? `&status=${status}` : "";
  const { deliveries } = await api(
    `/api/instances/${enc(instance.id)}/webhooks/deliveries?limit=50${query}`,
  );
  $("#deliveries tbody").replaceChildren(...deliveries.map(row));
  $("#deliveries-empty").hidden = deliveries.length > 0;
  $("#deliveries").hidden = deliveries.length === 0;
}

export const webhooksPanel = {
  reset() { $("#replay-result").hidden = true; },
  async refresh(current) {
    instance = current;
    await load();
  },
};

$("#delivery-filter").addEventListener("change", () => load().catch((e) => showError($("#deliveries-error"), e)));
$("#replay-failed").addEventListener("click", async () => {
  const { deliveries } = await api(
    `/api/instances/${enc(instance.id)}/webhooks/deliveries?status=failed&limit=200`,
  );
  const positions = [...new Set(deliveries.filter((d) => !d.replay).map((d) => d.position))].sort((a, b) => a - b);
  if (!positions.length) return showError($("#deliveries-error"), new Error("No failed deliveries to replay."));
  await replay(positions);
});
