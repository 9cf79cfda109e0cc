// "New instance": a dialog that offers only the engines this server runs, with the fields
// each needs (Cloud API credentials, a whatsmeow proxy) and an optional webhook.

import { api } from "./api.js";
import { $, el, onSubmit } from "./dom.js";

const HELP = {
  whatsmeow: "WhatsApp Web: pair it with a phone by QR code or pairing code.",
  cloud: "Meta's Cloud API: no pairing; the server checks these credentials as it connects.",
  sandbox: "A simulated WhatsApp network inside the server, for trying things out.",
};
const LABEL = { whatsmeow: "whatsmeow (WhatsApp Web)", cloud: "cloud (Meta's Cloud API)", sandbox: "sandbox (simulated)" };

let engines = null;

async function loadEngines() {
  if (!engines) engines = await api("/api/engines");
  const select = $("#create-form [name=engine]");
  if (!select.options.length) {
    select.replaceChildren(...engines.engines.map((name) =>
      el("option", { value: name, selected: name === engines.default }, LABEL[name] || name)));
  }
  fit();
}

function fit() {
  const engine = $("#create-form [name=engine]").value;
  $("#engine-help").textContent = HELP[engine] || "";
  const cloud = engine === "cloud";
  $("#cloud-fields").hidden = !cloud;
  for (const name of ["phoneNumberId", "accessToken", "appSecret", "verifyToken"]) {
    $(`#create-form [name=${name}]`).required = cloud;
  }
  $("#proxy-field").hidden = engine !== "whatsmeow";
}

export async function openCreate() {
  const dialog = $("#create");
  $("#create-form [data-error]").hidden = true;
  dialog.showModal();
  $("#create-form [name=name]").focus();
  try {
    await loadEngines();
  } catch (error) {
    $("#create-form [data-error]").textContent = error.message;
    $("#create-form [data-error]").hidden = false;
  }
}

$("#create-form [name=engine]").addEventListener("change", fit);
$("#create-cancel").addEventListener("click", () => $("#create").close());

onSubmit($("#create-form"), async (data, form) => {
  const engine = data.get("engine");
  const body = { name: data.get("name").trim(), engine };
  const webhookUrl = data.get("webhookUrl").trim();
  if (webhookUrl) body.webhookUrl = webhookUrl;
  if (engine === "cloud") {
    body.cloud = {};
    for (const key of ["phoneNumberId", "accessToken", "appSecret", "verifyToken", "graphBaseUrl"]) {
      const value = data.get(key).trim();
      if (value) body.cloud[key] = value;
    }
  }
  if (engine === "whatsmeow" && data.get("proxy").trim()) body.proxy = data.get("proxy").trim();
  const created = await api("/api/instances", { method: "POST", body });
  form.reset();
  fit();
  $("#create").close();
  location.hash = `#/instances/${created.id}/pair`;
});
