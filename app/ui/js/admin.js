// For administrators: system statistics and the users.

import { api } from "./api.js";
import { $, el, totals, when } from "./dom.js";

export const adminView = {
  async open() {
    await this.tick();
  },
  async tick() {
    const [system, { users }] = await Promise.all([api("/api/stats/system"), api("/api/users")]);
    totals($("#system-stats"), [
      ["Instances", system.instances.total], ["Connected", system.instances.active],
      ["Users", system.users.total], ["Active users", system.users.active],
      ["Messages sent", system.usage.messagesSent], ["Messages received", system.usage.messagesReceived],
      ["Webhooks sent", system.usage.webhookSent], ["API calls", system.usage.apiCalls],
    ]);
    $("#users tbody").replaceChildren(...users.map((u) =>
      el("tr", {},
        el("td", {}, u.email),
        el("td", {}, [u.firstName, u.lastName].filter(Boolean).join(" ")),
        el("td", {}, u.role),
        el("td", {}, u.active ? "yes" : "no"),
        el("td", {}, when(u.createdAt)),
      )));
  },
};
