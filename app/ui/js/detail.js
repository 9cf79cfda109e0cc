// One instance: its header (status, actions) and the tab panels below it.

import { api, enc } from "./api.js";
import { $, $$, badge, showError } from "./dom.js";
import { pairPanel } from "./pair.js";
import { contactsPanel, messagesPanel } from "./messages.js";
import { activityPanel, settingsPanel, usagePanel } from "./panels.js";
import { webhooksPanel } from "./webhooks.js";

const PANELS = {
  pair: pairPanel, messages: messagesPanel, contacts: contactsPanel, activity: activityPanel,
  webhooks: webhooksPanel, usage: usagePanel, settings: settingsPanel,
};

let current = { id: null, tab: "pair", instance: null };

async function action(path, method = "POST") {
  showError($("#detail-error"), null);
  try {
    await api(`/api/instances/${enc(current.id)}${path}`, { method });
    return true;
  } catch (error) {
    showError($("#detail-error"), error);
    return false;
  }
}

$("#reconnect").addEventListener("click", () => action("/reconnect"));
$("#logout").addEventListener("click", () => action("/logout"));
$("#delete").addEventListener("click", async () => {
  if (!confirm(`Delete the instance "${current.instance?.name}" and its session?`)) return;
  if (await action("", "DELETE")) location.hash = "#/instances";
});

export const detailView = {
  async open(id, tab = "pair") {
    const switched = id !== current.id;
    current = { id, tab: PANELS[tab] ? tab : "pair", instance: switched ? null : current.instance };
    for (const link of $$("#tabs a")) {
      link.href = `#/instances/${id}/${link.dataset.tab}`;
      link.classList.toggle("active", link.dataset.tab === current.tab);
    }
    for (const panel of $$("[data-panel]")) panel.hidden = panel.dataset.panel !== current.tab;
    showError($("#detail-error"), null);
    if (switched) Object.values(PANELS).forEach((p) => p.reset?.());
    await this.tick(true);
  },
  async tick(opened = false) {
    const instance = await api(`/api/instances/${enc(current.id)}`);
    current.instance = instance;
    $("#detail-name").textContent = instance.name;
    badge($("#detail-status"), instance.status);
    $("#detail-phone").textContent = instance.phone ? `+${instance.phone}` : "";
    const panel = PANELS[current.tab];
    await (opened && panel.open ? panel.open(instance) : panel.refresh(instance));
  },
};
