// An instance's webhook: where it goes, whether it is on, how the last delivery ended; its
// deliveries one per event (attempts and replays together), "failed" meaning unresolved;
// one replay of the unresolved ones behind a confirmation, and a test event.

import { api, enc } from "./api.js";
import { $, confirmAction, el, keyed, plural, showError, text, totals, when } from "./dom.js";

let instance = null;
let unresolved = 0;

function outcomeText(o) {
  if (o.status === "delivered" && o.recovered) return o.replay ? "failed → recovered by replay" : "failed → recovered";
  if (o.status === "delivered") return o.replay ? "delivered (replay)" : "delivered";
  return o.failures > 1 ? `failed (${o.failures} times)` : "failed";
}

function row(o) {
  return el("tr", {},
    el("td", { class: "event" }),
    el("td", {}, el("span", { class: "badge" })),
    el("td", { class: "attempts num" }),
    el("td", { class: "answer" }),
    el("td", {}, el("time")),
  );
}

function fillRow(node, o) {
  node.dataset.status = o.status;
  node.dataset.recovered = String(o.recovered);
  text($(".event", node), o.event);
  const badge = $(".badge", node);
  text(badge, outcomeText(o));
  badge.className = `badge status-${o.status}`;
  text($(".attempts", node), o.attempts);
  text($(".answer", node), o.status === "delivered" ? (o.lastStatusCode ? `HTTP ${o.lastStatusCode}` : "") : (o.lastError || ""));
  const time = $("time", node);
  time.setAttribute("datetime", o.lastAt);
  text(time, when(o.lastAt));
}

async function load() {
  const status = $("#delivery-filter").value;
  const query = status ? `&status=${status}` : "";
  const answer = await api(`/api/instances/${enc(instance.id)}/webhooks/outcomes?limit=50${query}`);
  unresolved = answer.unresolved;
  keyed($("#deliveries tbody"), answer.outcomes, (o) => o.deliveryId, row, fillRow);
  $("#deliveries-empty").hidden = answer.outcomes.length > 0;
  $("#deliveries").hidden = answer.outcomes.length === 0;
  const last = status ? null : answer.outcomes[0];
  const pairs = [
    ["URL", instance.webhookUrl || "none"],
    ["Webhooks", instance.webhookEnabled ? "on" : "off"],
    ["Failed, unresolved", unresolved],
  ];
  if (last) pairs.push(["Last delivery", `${outcomeText(last)}, ${when(last.lastAt)}`]);
  totals($("#webhook-summary"), pairs);
  const replay = $("#replay-failed");
  replay.disabled = unresolved === 0 || !instance.webhookEnabled;
  text(replay, unresolved ? `Replay ${plural(unresolved, "failed delivery", "failed deliveries")}` : "Replay failed");
  $("#send-test").disabled = !instance.webhookUrl;
}

export const webhooksPanel = {
  reset() {
    $("#replay-result").hidden = true;
    $("#deliveries tbody").replaceChildren();
    showError($("#deliveries-error"), null);
  },
  async refresh(current) {
    instance = current;
    await load();
  },
};

$("#delivery-filter").addEventListener("change", () => load().catch((e) => showError($("#deliveries-error"), e)));

$("#replay-failed").addEventListener("click", async () => {
  showError($("#deliveries-error"), null);
  const count = plural(unresolved, "failed delivery", "failed deliveries");
  const ok = await confirmAction(
    `Replay ${count}?`,
    `Each event that failed and stays failed is sent once more to ${instance.webhookUrl}, marked as a replay (X-Webhook-Replay: true) with its original delivery id.`,
    `Replay ${count}`,
  );
  if (!ok) return;
  try {
    const answer = await api(`/api/instances/${enc(instance.id)}/webhooks/replay`, {
      method: "POST", body: { failedOnly: true },
    });
    const result = $("#replay-result");
    text(result, answer.replaying
      ? `Replaying ${plural(answer.replaying, "event")}; their outcomes appear below.`
      : "Nothing to replay: every delivery is resolved.");
    result.hidden = false;
    await load();
  } catch (error) {
    showError($("#deliveries-error"), error);
  }
});

$("#send-test").addEventListener("click", async () => {
  showError($("#deliveries-error"), null);
  const result = $("#replay-result");
  try {
    const answer = await api(`/api/instances/${enc(instance.id)}/webhooks/test`, { method: "POST" });
    text(result, answer.delivered
      ? `Test event delivered: HTTP ${answer.statusCode}.`
      : `Test event not delivered: ${answer.error || `HTTP ${answer.statusCode}`}.`);
    result.className = answer.delivered ? "ok" : "error";
    result.hidden = false;
  } catch (error) {
    showError($("#deliveries-error"), error);
  }
});
