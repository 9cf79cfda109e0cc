// The smaller instance panels: activity log, usage chart and the settings form.

import { api, enc } from "./api.js";
import { $, el, onSubmit, totals, when } from "./dom.js";
import { barChart, dailySeries, monthDays } from "./charts.js";

function summary(details) {
  return Object.entries(details || {})
    .filter(([, value]) => value !== null && typeof value !== "object")
    .map(([key, value]) => `${key}: ${value}`)
    .join(", ");
}

export const activityPanel = {
  async refresh(instance) {
    const { logs } = await api(`/api/instances/${enc(instance.id)}/activity?limit=50`);
    $("#activity").replaceChildren(...logs.map((entry) =>
      el("li", {},
        el("time", { datetime: entry.createdAt }, when(entry.createdAt)),
        el("strong", {}, entry.action),
        el("span", { class: "muted" }, summary(entry.details)),
      )));
  },
};

export const usagePanel = {
  async refresh(instance) {
    const { usage } = await api(`/api/stats/instances/${enc(instance.id)}?period=month`);
    const days = monthDays();
    $("#instance-chart").replaceChildren(
      barChart(days.map((d) => d.slice(8)), dailySeries(days, usage.dailyStats), "Messages per day"),
    );
    totals($("#instance-totals"), [
      ["Sent", usage.messagesSent], ["Received", usage.messagesReceived],
      ["Media sent", usage.mediaSent], ["Webhooks sent", usage.webhookSent],
      ["API calls", usage.apiCalls],
    ]);
  },
};

let editing = null;

export const settingsPanel = {
  // Filled once when the tab opens, so that polling never overwrites what is being typed.
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
});
