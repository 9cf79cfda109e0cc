// Pairing, as the engine and the state allow: the QR code as an image (fetched with the
// session, redrawn when a new code arrives), a pairing code by phone number (whatsmeow),
// a simulated scan (sandbox), and for the Cloud API what Meta said of the number.

import { api, enc } from "./api.js";
import { $, onSubmit, text, totals } from "./dom.js";
import { human, statusOf } from "./status.js";

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

function describe(current) {
  const status = statusOf(current);
  if (status === "connected") return `Connected as +${current.phone}.`;
  if (current.engine === "cloud") {
    const { reason } = human(current);
    return `The Cloud API needs no pairing: the server checks the credentials as it connects. ${human(current).label}${reason ? `: ${reason}` : ""}.`;
  }
  if (status === "qr") return "Scan this QR code with WhatsApp → Linked devices.";
  const { label, reason } = human(current);
  return `${label}${reason ? `: ${reason}` : ""}. A QR code appears here when the instance asks for one.`;
}

export const pairPanel = {
  reset() {
    hideQr();
    $("#pairing-code").hidden = true;
  },
  async refresh(current) {
    instance = current;
    const status = statusOf(current);
    const waiting = status === "qr" || status === "connecting";
    text($("#pair-state"), describe(current));
    $("#pairing-form").hidden = !(current.engine === "whatsmeow" && waiting);
    $("#scan-form").hidden = !(current.engine === "sandbox" && status === "qr");
    if (status === "connected") $("#pairing-code").hidden = true;
    const details = current.connectionDetails;
    $("#cloud-details").hidden = !(current.engine === "cloud" && details);
    if (current.engine === "cloud" && details) {
      totals($("#cloud-details"), Object.entries(details)
        .filter(([, v]) => v !== null && typeof v !== "object")
        .map(([k, v]) => [k, v]));
    }
    if (current.connectionStatus.hasQr && status !== "connected") await showQr();
    else hideQr();
  },
};

onSubmit($("#pairing-form"), async (data) => {
  const { pairingCode } = await api(`/api/instances/${enc(instance.id)}/pairing-code`, {
    method: "POST", body: { phone: data.get("phone").trim() },
  });
  const node = $("#pairing-code");
  node.textContent = `On the phone, choose "Link with phone number" and type ${pairingCode}`;
  node.hidden = false;
});

onSubmit($("#scan-form"), async (data) => {
  const phone = data.get("phone").trim();
  await api(`/api/sandbox/instances/${enc(instance.id)}/scan`, {
    method: "POST", body: phone ? { phone } : {},
  });
  await pairPanel.refresh(await api(`/api/instances/${enc(instance.id)}`));
});
