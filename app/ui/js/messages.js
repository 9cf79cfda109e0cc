// Sending a message, the chat history with one number, and the contact list. Sending is
// disabled, with the reason, while the instance is not connected; a draft belongs to its
// instance and never carries over to another.

import { api, enc } from "./api.js";
import { $, el, keyed, onSubmit, text, when } from "./dom.js";
import { human, statusOf } from "./status.js";

let instance = null;
let chatPhone = null;

function bubble(m) {
  return el("li", { class: m.fromMe ? "out" : "in", "data-message-id": m.messageId },
    el("span", { class: "text" }, m.content ?? `[${m.messageType}]`),
    el("small", { class: "muted meta" }),
  );
}

function updateBubble(node, m) {
  text($(".meta", node), `${when(m.createdAt)} · ${m.fromMe ? m.status : "received"}`);
  const shown = $(".failure", node);
  if (m.status === "failed" && !shown) node.append(failure(m.error));
}

async function loadChat() {
  text($("#chat-with"), chatPhone ? `with +${chatPhone}` : "");
  $("#chat-empty").hidden = Boolean(chatPhone);
  if (!chatPhone) return $("#chat").replaceChildren();
  const { messages } = await api(
    `/api/instances/${enc(instance.id)}/chats/${enc(chatPhone)}/messages?limit=50`,
  );
  keyed($("#chat"), messages.reverse(), (m) => m.id, bubble, updateBubble);
  $("#chat-empty").hidden = messages.length > 0;
  if (!messages.length) text($("#chat-empty"), "No messages with this number yet.");
}

// A message that failed after it was accepted (Cloud API): what the network said.
function failure(error) {
  const said = [error?.title || "failed", error?.code ? `(code ${error.code})` : "", error?.details || ""];
  return el("small", { class: "tone-bad failure" }, said.filter(Boolean).join(" "));
}

function sending(current) {
  const connected = statusOf(current) === "connected";
  const blocked = $("#send-blocked");
  text(blocked, connected ? "" : `Sending needs a connected instance; this one is ${human(current).label.toLowerCase()}.`);
  blocked.hidden = connected;
  $("#send-form button[type=submit]").disabled = !connected;
}

export const messagesPanel = {
  reset() {
    chatPhone = null;
    $("#send-form").reset();
    $("#chat").replaceChildren();
  },
  chatWith(phone) { chatPhone = phone.replace(/\D/g, ""); },
  async refresh(current) {
    instance = current;
    sending(current);
    await loadChat();
  },
};

export const contactsPanel = {
  reset() { $("#contacts").replaceChildren(); },
  async refresh(current) {
    instance = current;
    const { contacts } = await api(`/api/whatsapp/${enc(current.id)}/contacts`);
    keyed($("#contacts"), contacts, (c) => c.id, (c) =>
      el("li", {},
        el("strong", {}, c.name || `+${c.number}`),
        el("span", { class: "muted" }, c.isGroup ? "group" : `+${c.number}`),
        c.isGroup ? null : el("button", {
          type: "button", class: "secondary", "aria-label": `Chat with ${c.name || `+${c.number}`}`,
          onclick: () => {
            messagesPanel.chatWith(c.number);
            location.hash = `#/instances/${current.id}/messages`;
          },
        }, "Chat"),
      ));
    $("#contacts-empty").hidden = contacts.length > 0;
  },
};

onSubmit($("#send-form"), async (data, form) => {
  const phone = data.get("phone").trim();
  await api(`/api/whatsapp/${enc(instance.id)}/send`, {
    method: "POST", body: { phone, message: data.get("message") },
  });
  form.elements.message.value = "";
  messagesPanel.chatWith(phone);
  await loadChat();
});
