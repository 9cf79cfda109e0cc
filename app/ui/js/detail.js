// One instance: its header (human state, why it is down, Reconnect with its outcome), the
// tab panels, and the danger zone (Log out, Delete) behind confirmations.

import { api, enc } from "./api.js";
import { $, $$, announce, confirmAction, showError, text, when } from "./dom.js";
import { pairPanel } from "./pair.js";
import { contactsPanel, messagesPanel } from "./messages.js";
import { activityPanel, settingsPanel, usagePanel } from "./panels.js";
import { webhooksPanel } from "./webhooks.js";
import { badge, human, statusOf } from "./status.js";

const PANELS = {
  pair: pairPanel, messages: messagesPanel, contacts: contactsPanel, activity: activityPanel,
  webhooks: webhooksPanel, usage: usagePanel, settings: settingsPanel,
};
const TAB_NAMES = {
  pair: "Pair", messages: "Messages", contacts: "Contacts", activity: "Activity",
  webhooks: "Webhooks", usage: "Usage", settings: "Settings",
};

let current = { id: null, tab: "pair", instance: null };
let awaited = null; // a Reconnect whose outcome is still to be told: {since}

function result(message, ok = true) {
  const node = $("#action-result");
  text(node, message);
  node.className = ok ? "ok" : "error";
  node.hidden = !message;
}

async function action(path, method = "POST") {
  showError($("#detail-error"), null);
  try {
    return await api(`/api/instances/${enc(current.id)}${path}`, { method });
  } catch (error) {
    showError($("#detail-error"), error);
    return null;
  }
}

$("#reconnect").addEventListener("click", async () => {
  result("Reconnecting…");
  const before = current.instance?.updatedAt;
  if (await action("/reconnect")) {
    awaited = { before };
    await detailView.tick();
  } else {
    result("");
  }
});

$("#logout").addEventListener("click", async () => {
  const name = current.instance?.name;
  const ok = await confirmAction(
    `Log "${name}" out of WhatsApp?`,
    "This unlinks the device from the phone. Pairing it again needs the phone in hand.",
    "Log out",
  );
  if (ok && (await action("/logout"))) {
    result(`"${name}" is logged out.`);
    await detailView.tick();
  }
});

$("#delete").addEventListener("click", async () => {
  const name = current.instance?.name;
  const ok = await confirmAction(
    `Delete "${name}"?`,
    "Its session is removed and it stops at once; its history stays in the event store.",
    "Delete instance",
  );
  if (ok && (await action("", "DELETE"))) location.hash = "#/instances";
});

// What a Reconnect came to, once the state moved on from it.
function reconnectOutcome(instance) {
  if (!awaited || instance.updatedAt === awaited.before) return;
  const status = statusOf(instance);
  if (status === "connecting" || status === "reconnecting") {
    result(`Reconnect asked: ${human(instance).label.toLowerCase()}…`);
    return;
  }
  const state = human(instance);
  result(`Reconnect: ${state.label}${state.reason ? ` (${state.reason})` : ""}.`, status === "connected" || status === "qr");
  announce(`Reconnect: ${state.label}`);
  awaited = null;
}

function header(instance) {
  text($("#detail-name"), instance.name);
  badge($("#detail-status"), instance);
  text($("#detail-phone"), instance.phone ? `+${instance.phone}` : "");
  text($("#detail-engine"), instance.engine);
  const state = human(instance);
  const banner = $("#reason");
  const why = state.reason ? `${state.label}: ${state.reason}` : "";
  text(banner, why ? `${why} (since ${when(instance.updatedAt)})` : "");
  banner.className = state.tone === "bad" ? "banner bad" : "banner";
  banner.hidden = !why;
  const paired = Boolean(instance.phone) && statusOf(instance) !== "logged_out";
  $("#logout").disabled = !paired;
  text($("#logout-why"), paired
    ? "Log out unlinks this device from the phone; pairing it again needs the phone."
    : "Log out is for a paired instance; this one is not paired.");
  document.title = `${instance.name} · ${TAB_NAMES[current.tab]} · WhatsApp API`;
}

export const detailView = {
  title: "Instance",
  async open(id, tab = "pair") {
    const switched = id !== current.id;
    current = { id, tab: PANELS[tab] ? tab : "pair", instance: switched ? null : current.instance };
    for (const link of $$("#tabs a")) {
      link.href = `#/instances/${id}/${link.dataset.tab}`;
      if (link.dataset.tab === current.tab) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    for (const panel of $$("[data-panel]")) panel.hidden = panel.dataset.panel !== current.tab;
    showError($("#detail-error"), null);
    if (switched) {
      awaited = null;
      result("");
      Object.values(PANELS).forEach((p) => p.reset?.());
    }
    try {
      await this.tick(true);
    } catch (error) {
      if (error.status === 404) return gone(error);
      throw error;
    }
  },
  async tick(opened = false) {
    if (!current.id) return;
    const instance = await api(`/api/instances/${enc(current.id)}`);
    current.instance = instance;
    $("#view-detail").classList.remove("gone");
    header(instance);
    reconnectOutcome(instance);
    const panel = PANELS[current.tab];
    await (opened && panel.open ? panel.open(instance) : panel.refresh(instance));
  },
};

// A link to an instance that is gone (or never was, or is someone else's): nothing of the
// previous instance stays on screen.
function gone(error) {
  current = { id: null, tab: "pair", instance: null };
  Object.values(PANELS).forEach((p) => p.reset?.());
  for (const panel of $$("[data-panel]")) panel.hidden = true;
  text($("#detail-name"), "Instance not found");
  text($("#detail-status"), "");
  $("#detail-status").className = "";
  text($("#detail-phone"), "");
  text($("#detail-engine"), "");
  $("#reason").hidden = true;
  result("");
  $("#view-detail").classList.add("gone");
  showError($("#detail-error"), new Error(`${error.message}: it may have been deleted.`));
  document.title = "Instance not found · WhatsApp API";
  throw Object.assign(new Error("gone"), { handled: true });
}
