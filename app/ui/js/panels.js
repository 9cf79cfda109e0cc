// The smaller instance panels: the activity log (by kind), the usage chart and settings.

import { api, enc } from "./api.js";
import { $, el, keyed, onSubmit, text, totals, when } from "./dom.js";
import { barChart, dailySeries, monthDays } from "./charts.js";

// The activity actions of each kind the filter offers.
const KINDS = {
  connection: [
    "connection_requested", "reconnect_requested", "qr_received", "qr_expired", "connection_opened",
    "connection_closed", "temporary_ban", "logged_out", "client_outdated", "account_update",
    "platform_error",
  ],
  messages: ["message_sent", "message_received", "message_failed", "send_failed", "quota_exceeded"],
  webhooks: ["webhook_failed", "webhook_delivered"],
};

function summary(details) {
  return Object.entries(details || {})
    .filter(([, value]) => value !== null && typeof value !== "object")
    .map(([key, value]) => `${key}: ${value}`)
    .join(", ");
}

let activityOf = null;

export const activityPanel = {
  reset() {
    $("#activity").replaceChildren();
    $("#activity-kind").value = "";
  },
  async refresh(instance) {
    activityOf = instance;
    const kind = $("#activity-kind").value;
    const actions = kind ? `&actions=${KINDS[kind].join(",")}` : "";
    const { logs } = await api(`/api/instances/${enc(instance.id)}/activity?limit=50${actions}`);
    keyed($("#activity"), logs, (entry) => entry.id, (entry) =>
      el("li", { "data-action": entry.action },
        el("time", { datetime: entry.createdAt }, when(entry.createdAt)),
        el("strong", {}, entry.action),
        el("span", { class: "muted" }, summary(entry.details)),
      ));
    $("#activity-empty").hidden = logs.length > 0;
  },
};

$("#activity-kind").addEventListener("change", () => {
  if (activityOf) activityPanel.refresh(activityOf).catch(() => {});
});

export const usagePanel = {
  async refresh(instance) {
    const { usage } = await api(`/api/stats/instances/${enc(instance.id)}?period=month`);
    const days = monthDays();
    const series = dailySeries(days, usage.dailyStats);
    const chart = $("#instance-chart");
    const signature = JSON.stringify(series);
    if (chart.dataset.shown !== signature) {
      chart.dataset.shown = signature;
      chart.replaceChildren(barChart(days.map((d) => d.slice(8)), series, "Messages per day this month", "Day", chart));
    }
    totals($("#instance-totals"), [
      ["Sent", usage.messagesSent], ["Received", usage.messagesReceived],
      ["Media sent", usage.mediaSent], ["Webhooks sent", usage.webhookSent],
      ["API calls", usage.apiCalls],
    ]);
  },
};

let editing = null;

export const settingsPanel = {
  // Filled once when the tab opens, so that live updates never overwrite what is typed.
  async open(instance) {
    editing = instance;
    const form = $("#settings-form").elements;
    const hook = instance.webhookSettings;
    form.name.value = instance.name;
    form.description.value = instance.description || "";
    form.webhookUrl.value = instance.webhookUrl || "";
    form.webhookEnabled.checked = instance.webhookEnabled;
    for (const key of ["notifyReceived", "notifySent", "notifyDelivery", "notifyRead"]) {
      form[key].checked = hook[key];
    }
    form.maxRetries.value = hook.maxRetries ?? "";
    form.retryInterval.value = hook.retryInterval ?? "";
    form.secret.value = "";
    form.secret.placeholder = hook.hasSecret ? "set (unchanged)" : "none";
    $("#settings-form [data-ok]").hidden = true;
  },
  async refresh(instance) {
    editing = instance;
  },
};

onSubmit($("#settings-form"), async (data, node) => {
  const form = node.elements;
  $("[data-ok]", node).hidden = true;
  const number = (name) => (data.get(name) === "" ? undefined : Number(data.get(name)));
  const webhookSettings = {
    notifyReceived: form.notifyReceived.checked, notifySent: form.notifySent.checked,
    notifyDelivery: form.notifyDelivery.checked, notifyRead: form.notifyRead.checked,
    maxRetries: number("maxRetries"), retryInterval: number("retryInterval"),
  };
  if (data.get("secret")) webhookSettings.secret = data.get("secret");
  const body = {
    name: data.get("name").trim(), description: data.get("description"),
    webhookEnabled: form.webhookEnabled.checked, webhookSettings,
  };
  // The URL is shown with its credentials hidden: send it only when it was changed.
  const webhookUrl = data.get("webhookUrl").trim() || null;
  if (webhookUrl !== (editing.webhookUrl || null)) body.webhookUrl = webhookUrl;
  const updated = await api(`/api/instances/${enc(editing.id)}`, { method: "PUT", body });
  await settingsPanel.open(updated);
  $("[data-ok]", node).hidden = false;
  text($("#detail-name"), updated.name);
});
