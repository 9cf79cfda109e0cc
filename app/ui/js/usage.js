// The signed-in user's usage: daily messages over all instances, and this month per instance.

import { api, enc } from "./api.js";
import { $, totals } from "./dom.js";
import { barChart, dailySeries, monthDays } from "./charts.js";

export const usageView = {
  async open() {
    const { total, instances } = await api("/api/stats/user?period=month");
    totals($("#user-totals"), [
      ["Instances", total.instanceCount], ["Sent", total.messagesSent],
      ["Received", total.messagesReceived], ["Webhooks sent", total.webhookSent],
      ["API calls", total.apiCalls],
    ]);
    // The user's days are the sum of their instances' days.
    const daily = await Promise.all(instances.map((i) =>
      api(`/api/stats/instances/${enc(i.instanceId)}?period=month`).then((a) => a.usage.dailyStats)));
    const days = monthDays();
    $("#user-chart").replaceChildren(
      barChart(days.map((d) => d.slice(8)), dailySeries(days, daily.flat()), "Messages per day"),
    );
    $("#user-instances-chart").replaceChildren(barChart(
      instances.map((i) => i.name),
      [
        { name: "sent", cls: "sent", values: instances.map((i) => i.messagesSent) },
        { name: "received", cls: "received", values: instances.map((i) => i.messagesReceived) },
      ],
      "Messages by instance",
    ));
  },
  async tick() {},
};
