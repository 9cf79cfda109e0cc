// For administrators: system statistics and the users (create, deactivate, limit, reset).

import { api, enc, session } from "./api.js";
import { $, confirmAction, el, keyed, onSubmit, showError, text, totals } from "./dom.js";

function result(message) {
  const node = $("#users-result");
  text(node, message);
  node.hidden = !message;
}

async function act(work) {
  showError($("#users-error"), null);
  result("");
  try {
    await work();
    await adminView.tick();
  } catch (error) {
    showError($("#users-error"), error);
  }
}

function limitInput(user, key, label) {
  return el("input", {
    type: "number", min: "0", name: key, value: user.limits?.[key] ?? "", placeholder: "none",
    "aria-label": `${label} for ${user.email}`, class: "limit",
  });
}

function row(user) {
  const mine = user.id === session.user?.id;
  const save = el("button", { type: "button", class: "secondary", "aria-label": `Save the limits of ${user.email}` }, "Save limits");
  const reset = el("button", { type: "button", class: "secondary", "aria-label": `Set a new password for ${user.email}` }, "New password");
  const deactivate = el("button", { type: "button", class: "danger", "aria-label": `Deactivate ${user.email}`, disabled: mine || !user.active }, "Deactivate");
  const node = el("tr", {},
    el("td", {}, user.email),
    el("td", {}, [user.firstName, user.lastName].filter(Boolean).join(" ")),
    el("td", {}, user.role),
    el("td", { class: "active" }),
    el("td", {}, limitInput(user, "maxInstances", "Max instances")),
    el("td", {}, limitInput(user, "maxMessagesPerDay", "Max messages a day")),
    el("td", {}, el("div", { class: "inline" }, save, reset, deactivate)),
  );
  save.addEventListener("click", () => act(async () => {
    const value = (name) => {
      const raw = $(`[name=${name}]`, node).value;
      return raw === "" ? null : Number(raw);
    };
    await api(`/api/users/${enc(user.id)}`, {
      method: "PUT", body: { limits: { maxInstances: value("maxInstances"), maxMessagesPerDay: value("maxMessagesPerDay") } },
    });
    result(`Limits of ${user.email} saved.`);
  }));
  reset.addEventListener("click", () => act(async () => {
    const password = randomPassword();
    if (!(await confirmAction(`Set a new password for ${user.email}?`,
      `Their password becomes ${password} (give it to them; they can change it on their account page).`,
      "Set password"))) return;
    await api(`/api/users/${enc(user.id)}`, { method: "PUT", body: { password } });
    result(`New password for ${user.email}: ${password}`);
  }));
  deactivate.addEventListener("click", () => act(async () => {
    if (!(await confirmAction(`Deactivate ${user.email}?`,
      "Their sign-ins, tokens and API key stop working at once; their events stay.", "Deactivate"))) return;
    await api(`/api/users/${enc(user.id)}`, { method: "DELETE" });
    result(`${user.email} is deactivated.`);
  }));
  return node;
}

function randomPassword() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return btoa(String.fromCharCode(...bytes)).replace(/[+/=]/g, "").slice(0, 16);
}

export const adminView = {
  title: "Administration",
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
    keyed($("#users tbody"), users, (u) => u.id, row, (node, user) => {
      text($(".active", node), user.active ? "yes" : "no");
      const deactivate = $(".danger", node);
      deactivate.disabled = user.id === session.user?.id || !user.active;
    });
  },
};

onSubmit($("#user-form"), async (data, form) => {
  const body = Object.fromEntries(["email", "firstName", "lastName", "password", "role"].map((k) => [k, data.get(k)]));
  const created = await api("/api/users", { method: "POST", body });
  form.reset();
  result(`${created.email} can sign in now.`);
  await adminView.tick();
});

