// Pairing: the QR code as an image (fetched with the token, redrawn when a new code arrives),
// a pairing code by phone number (whatsmeow), and for the sandbox a simulated scan.

import { api, enc } from "./api.js";
import { $, onSubmit } from "./dom.js";

let instance = null;
let shownCode = null;
let imageUrl = null;

function hideQr() {
  const image = $("#qr");
  image.hidden = true;
  image.removeAttribute("src");
  delete image.dataset.code;
  if (imageUrl) URL.revokeObjectURL(imageUrl);
  imageUrl = null;
  shownCode = null;
}

async function showQr() {
  let code;
  try {
    ({ qrCode: code } = await api(`/api/instances/${enc(instance.id)}/qr`));
  } catch (error) {
    if (error.code === "qr_not_available") return hideQr();
    throw error;
  }
  if (code === shownCode) return;
  const blob = await api(`/api/instances/${enc(instance.id)}/qr?format=svg`, { blob: true });
  const image = $("#qr");
  if (imageUrl) URL.revokeObjectURL(imageUrl);
  imageUrl = URL.createObjectURL(blob);
  image.src = imageUrl;
  image.dataset.code = code;
  image.hidden = false;
  shownCode = code;
}

function describe({ status, phone, connectionStatus }) {
  if (status === "connected") return `Connected as +${phone}.`;
  if (connectionStatus.hasQr) return "Scan this QR code with WhatsApp → Linked devices.";
  const why = connectionStatus.lastError ? ` Last error: ${connectionStatus.lastError}.` : "";
  const next = connectionStatus.retryAt
    ? ` Next attempt ${new Date(connectionStatus.retryAt).toLocaleTimeString()}.`
    : "";
  if (status === "outdated") return `WhatsApp refuses this version of the engine: upgrade neonize.${why}`;
  return `Status: ${status}.${why}${next} A QR code appears here when the instance asks for one.`;
}

export const pairPanel = {
  reset() {
    hideQr();
    $("#pairing-code").hidden = true;
  },
  async refresh(current) {
    instance = current;
    const connected = current.status === "connected";
    $("#pair-state").textContent = describe(current);
    $("#pairing-form").hidden = connected;
    $("#scan-form").hidden = connected || current.engine !== "sandbox";
    if (connected) $("#pairing-code").hidden = true;
    if (current.connectionStatus.hasQr && !connected) await showQr();
    else hideQr();
  },
};

onSubmit($("#pairing-form"), async (data) => {
  try {
    const { pairingCode } = await api(`/api/instances/${enc(instance.id)}/pairing-code`, {
      method: "POST", body: { phone: data.get("phone").trim() },
    });
    const node = $("#pairing-code");
    node.textContent = `On the phone, choose "Link with phone number" and type ${pairingCode}`;
    node.hidden = false;
  } catch (error) {
    if (error.code === "unsupported_by_engine") {
      error.message = `Pairing codes need the whatsmeow engine; this instance uses ${instance.engine} (${error.message}).`;
    }
    throw error;
  }
});

onSubmit($("#scan-form"), async (data) => {
  const phone = data.get("phone").trim();
  await api(`/api/sandbox/instances/${enc(instance.id)}/scan`, {
    method: "POST", body: phone ? { phone } : {},
  });
  await pairPanel.refresh(await api(`/api/instances/${enc(instance.id)}`));
});
