// Sending a test message, the chat history with one number, and the contact list.

import { api, enc } from "./api.js";
import { $, el, onSubmit, when } from "./dom.js";

let instance = null;
let chatPhone = null;

async function loadChat() {
  $("#chat-with").textContent = chatPhone ? `with +${chatPhone}` : "";
  $("#chat-empty").hidden = Boolean(chatPhone);
  if (!chatPhone) return $("#chat").replaceChildren();
  const { messages } = await api(
    `/api/instances/${enc(instance.id)}/chats/${enc(chatPhone)}/messages?limit=50`,
  );
  $("#chat").replaceChildren(...messages.reverse().map((m) =>
    el("li", { class: m.fromMe ? "out" : "in", "data-message-id": m.messageId },
      el("span", { class: "text" }, m.content ?? `[${m.messageType}]`),
      el("small", { class: "muted" }, `${when(m.createdAt)} · ${m.fromMe ? m.status : "received"}`),
      ...(m.status === "failed" ? [failure(m.error)] : []),
    )));
  $("#chat-empty").hidden = messages.length > 0;
  if (!messages.length) $("#chat-empty").textContent = "No messages with this number yet.";
}

// A message that failed after it was accepted (Cloud API): what the network said.
function failure(error) {
  const said = [error?.title || "failed", error?.code ? `(code ${error.code})` : "", error?.details || ""];
  return el("small", { class: "status-failed failure" }, said.filter(Boolean).join(" "));
}

export const messagesPanel = {
  reset() { chatPhone = null; },
  chatWith(phone) { chatPhone = phone.replace(/\D/g, ""); },
  async refresh(current) {
    instance = current;
    await loadChat();
  },
};

export const contactsPanel = {
  async refresh(current) {
    instance = current;
    const { contacts } = await api(`/api/whatsapp/${enc(current.id)}/contacts`);
    $("#contacts").replaceChildren(...contacts.map((c) =>
      el("li", {},
        el("strong", {}, c.name || `+${c.number}`),
        el("span", { class: "muted" }, c.isGroup ? "group" : `+${c.number}`),
        c.isGroup ? null : el("button", {
          type: "button", class: "secondary",
          onclick: () => {
            messagesPanel.chatWith(c.number);
            location.hash = `#/instances/${current.id}/messages`;
          },
        }, "Chat"),
      )));
    $("#contacts-empty").hidden = contacts.length > 0;
  },
};

onSubmit($("#send-form"), async (data) => {
  const phone = data.get("phone").trim();
  await api(`/api/whatsapp/${enc(instance.id)}/send`, {
    method: "POST", body: { phone, message: data.get("message") },
  });
  messagesPanel.chatWith(phone);
  await loadChat();
});
