// The signed-in user's usage: daily messages over all instances, and this month per instance.

import { api, each, enc } from "./api.js";
import { $, totals } from "./dom.js";
import { barChart, dailySeries, monthDays, rowChart } from "./charts.js";

export const usageView = {
  title: "Usage",
  async open() {
    const { total, instances } = await api("/api/stats/user?period=month");
    totals($("#user-totals"), [
      ["Instances", total.instanceCount], ["Sent", total.messagesSent],
      ["Received", total.messagesReceived], ["Webhooks sent", total.webhookSent],
      ["API calls", total.apiCalls],
    ]);
    // The user's days are the sum of their instances' days (six requests at a time).
    const daily = await each(instances, (i) =>
      api(`/api/stats/instances/${enc(i.instanceId)}?period=month`).then((a) => a.usage.dailyStats));
    const days = monthDays();
    const rows = daily.filter((d) => d.ok).flatMap((d) => d.value);
    const chart = $("#user-chart");
    chart.replaceChildren(barChart(days.map((d) => d.slice(8)), dailySeries(days, rows), "Messages per day this month", "Day", chart));
    const byInstance = $("#user-instances-chart");
    byInstance.replaceChildren(rowChart(
      instances.map((i) => i.name),
      [
        { name: "sent", cls: "sent", values: instances.map((i) => i.messagesSent) },
        { name: "received", cls: "received", values: instances.map((i) => i.messagesReceived) },
      ],
      "Messages by instance this month", "Instance", byInstance,
    ));
  },
  async tick() {},
};
