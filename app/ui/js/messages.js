// Messaging in two panes: the instance's recent chats (last message, unread count) and the
// conversation with one of them, newest at the bottom and in view, with "Load older",
// replies, reactions, edits, deletions, polls and locations as the API reports them. The
// composer belongs to the open chat; sending is disabled, with the reason, while the
// instance is not connected; drafts belong to their instance and never carry over.
// Also the contact list and the groups page (groups with their members).

import { api, enc } from "./api.js";
import { $, announce, el, keyed, onSubmit, plural, text, when } from "./dom.js";
import { human, statusOf } from "./status.js";

const PAGE = 30;
const REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

let instance = null;
let chatId = null; // the open chat, as the chat list names it (a JID), or digits typed in
let messages = new Map(); // the open chat's messages by messageId
let older = 0; // how many older messages "Load older" has fetched
let hasOlder = false;
let replyTo = null; // the message the composer answers
let drafts = new Map(); // chat -> unsent text, for this instance only
let marked = new Set(); // received messages already marked read
let pending = null; // a chat to open once the panel shows (from Contacts or Groups)

/** "15550000002@s.whatsapp.net" and "15550000002" name the same chat. */
const same = (a, b) => Boolean(a && b) && bare(a) === bare(b);
const bare = (id) => String(id).replace(/@s\.whatsapp\.net$/, "");

function nameOf(chat) {
  if (chat.name) return chat.name;
  const [user, server] = chat.id.split("@");
  return server === "s.whatsapp.net" || !server ? `+${user}` : chat.id;
}

let titles = new Map(); // names of chats opened from elsewhere (a group from the Groups tab)

function chatLabel(id) {
  const known = chatRows.get(bare(id));
  return known ? nameOf(known) : nameOf({ id, name: titles.get(bare(id)) });
}

/** What a message says, in one line (for the chat list, quotes and button labels). */
function gist(m) {
  if (!m) return "a message";
  if (m.revoked) return "This message was deleted";
  if (m.poll) return `Poll: ${m.poll.question}`;
  if (m.location) return `Location: ${[m.location.name, m.location.address].filter(Boolean).join(", ") || `${m.location.latitude}, ${m.location.longitude}`}`;
  if (m.contacts) return `Contact: ${m.contacts.map((c) => c.name).join(", ")}`;
  const content = m.content ?? "";
  if (content) return content.length > 60 ? `${content.slice(0, 57)}…` : content;
  return `[${m.messageType || m.type}]`;
}

// -- the chat list ----------------------------------------------------------------------

let chatRows = new Map();

function chatItem(chat) {
  const open = el("button", { type: "button", class: "chat-open", onclick: () => openChat(chat.id) },
    el("span", { class: "chat-name" }),
    el("span", { class: "chat-last muted" }),
    el("span", { class: "chat-side" }, el("time", { class: "muted" }), el("span", { class: "unread" })),
  );
  return el("li", {}, open);
}

function updateChatItem(node, chat) {
  const last = chat.lastMessage;
  const button = $(".chat-open", node);
  text($(".chat-name", node), nameOf(chat));
  text($(".chat-last", node), last ? `${last.fromMe ? "You: " : ""}${gist(last)}` : "");
  const time = $("time", node);
  text(time, last ? when(last.createdAt) : "");
  if (last) time.setAttribute("datetime", last.createdAt);
  const unread = $(".unread", node);
  text(unread, chat.unreadCount ? String(chat.unreadCount) : "");
  unread.hidden = !chat.unreadCount;
  const label = `${nameOf(chat)}${chat.unreadCount ? `, ${plural(chat.unreadCount, "unread message")}` : ""}`;
  if (button.getAttribute("aria-label") !== label) button.setAttribute("aria-label", label);
  const current = same(chat.id, chatId);
  if (current) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");
}

async function loadChats() {
  const { chats } = await api(`/api/instances/${enc(instance.id)}/chats?limit=50`);
  chatRows = new Map(chats.map((c) => [bare(c.id), c]));
  keyed($("#chats"), chats, (c) => c.id, chatItem, updateChatItem);
  $("#chats-empty").hidden = chats.length > 0;
}

// -- the conversation -----------------------------------------------------------------

function reactionsOf(m) {
  const counts = new Map();
  for (const r of m.reactions || []) counts.set(r.emoji, (counts.get(r.emoji) || 0) + 1);
  return [...counts].map(([emoji, n]) => (n > 1 ? `${emoji} ${n}` : emoji)).join(" ");
}

function mine(m) {
  return (m.reactions || []).find((r) => r.from === "me")?.emoji || "";
}

function body(m) {
  if (m.revoked) return [el("em", { class: "text muted" }, "This message was deleted")];
  const parts = [];
  if (m.poll) {
    parts.push(el("strong", { class: "text" }, m.poll.question));
    parts.push(el("ul", { class: "poll" }, ...m.poll.options.map((o) =>
      el("li", {}, `${o.name} — ${plural(o.votes.length, "vote")}`))));
  } else if (m.location) {
    const where = [m.location.name, m.location.address].filter(Boolean).join(", ");
    parts.push(el("span", { class: "text location" },
      `Location: ${where ? `${where} ` : ""}(${m.location.latitude}, ${m.location.longitude})`));
  } else if (m.contacts) {
    parts.push(el("span", { class: "text" }, m.contacts.map((c) => `Contact: ${c.name} +${c.phone}`).join("\n")));
  } else {
    const kind = `[${m.messageType}]`;
    const line = m.hasMedia ? (m.content ? `${kind} ${m.content}` : kind) : m.content ?? kind;
    parts.push(el("span", { class: "text" }, line));
  }
  return parts;
}

function bubble(m) {
  return el("li", { class: m.fromMe ? "out" : "in", "data-message-id": m.messageId },
    el("div", { class: "content" }),
    el("small", { class: "muted meta" }),
    el("span", { class: "reactions", "aria-label": "Reactions" }),
    el("div", { class: "message-actions" }),
  );
}

function updateBubble(node, m) {
  // Redraw the content only when what it shows changed (selected text survives ticks).
  const signature = JSON.stringify([m.content, m.revoked, m.edited, m.poll, m.location, m.contacts,
    m.quotedMessageId, m.quotedMessageId && gist(messages.get(m.quotedMessageId)), m.sender]);
  if (node.dataset.shown !== signature) {
    node.dataset.shown = signature;
    const quoted = m.quotedMessageId
      ? el("blockquote", { class: "quote" }, gist(messages.get(m.quotedMessageId)))
      : null;
    const sender = m.sender && !m.fromMe ? el("strong", { class: "sender" }, bare(m.sender)) : null;
    $(".content", node).replaceChildren(...[sender, quoted, ...body(m)].filter(Boolean));
    const actions = $(".message-actions", node);
    actions.replaceChildren(...(m.revoked ? [] : actionsFor(m)));
  }
  const state = m.fromMe ? m.status : "received";
  text($(".meta", node), `${when(m.createdAt)} · ${state}${m.edited && !m.revoked ? " · edited" : ""}`);
  const reactions = reactionsOf(m);
  text($(".reactions", node), reactions);
  $(".reactions", node).hidden = !reactions;
  const shown = $(".failure", node);
  if (m.status === "failed" && !shown) node.insertBefore(failure(m.error), $(".reactions", node));
  const chosen = mine(m);
  for (const button of node.querySelectorAll("[data-emoji]")) {
    button.setAttribute("aria-pressed", String(button.dataset.emoji === chosen));
  }
}

function actionsFor(m) {
  const what = gist(m);
  const reply = el("button", {
    type: "button", class: "quiet", "aria-label": `Reply to “${what}”`,
    onclick: () => startReply(m),
  }, "Reply");
  const picker = el("details", { class: "react" },
    el("summary", { "aria-label": `React to “${what}”` }, "React"),
    el("span", { class: "emoji-row" }, ...REACTIONS.map((emoji) => el("button", {
      type: "button", class: "chip", "data-emoji": emoji, "aria-pressed": "false",
      "aria-label": `React ${emoji} to “${what}”`,
      onclick: (event) => react(m, emoji, event.currentTarget.closest("details")),
    }, emoji))),
  );
  return [reply, picker];
}

async function react(m, emoji, picker) {
  // Choosing the reaction already given takes it back, as in WhatsApp.
  const chosen = mine(messages.get(m.messageId) || m) === emoji ? "" : emoji;
  try {
    await api(`/api/whatsapp/${enc(instance.id)}/messages/${enc(m.messageId)}/reaction`, {
      method: "POST", body: { emoji: chosen },
    });
    picker.open = false;
    announce(chosen ? `Reacted ${chosen}` : "Reaction removed");
    await loadConversation();
  } catch (error) {
    showComposerError(error);
  }
}

function startReply(m) {
  replyTo = m;
  text($("#replying-text"), `Replying to “${gist(m)}”`);
  $("#replying").hidden = false;
  $("#send-form [name=message]").focus();
}

function stopReply() {
  replyTo = null;
  $("#replying").hidden = true;
}

// A message that failed after it was accepted (Cloud API): what the network said.
function failure(error) {
  const said = [error?.title || "failed", error?.code ? `(code ${error.code})` : "", error?.details || ""];
  return el("small", { class: "tone-bad failure" }, said.filter(Boolean).join(" "));
}

function showComposerError(error) {
  const node = $("#send-form [data-error]");
  text(node, error.message);
  node.hidden = false;
}

async function fetchPage(skip, limit) {
  const answer = await api(
    `/api/instances/${enc(instance.id)}/chats/${enc(chatId)}/messages?limit=${limit}&skip=${skip}`,
  );
  for (const m of answer.messages) messages.set(m.messageId, m);
  return answer;
}

async function loadConversation() {
  const list = $("#chat");
  if (!chatId) {
    list.replaceChildren();
    return;
  }
  text($("#chat-title"), chatLabel(chatId));
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const before = messages.size;
  const answer = await fetchPage(0, PAGE);
  if (older === 0) hasOlder = answer.pagination.hasMore;
  const ordered = [...messages.values()].sort((a, b) =>
    a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0);
  keyed(list, ordered, (m) => m.messageId, bubble, updateBubble);
  $("#load-older").hidden = !hasOlder;
  $("#chat-empty").hidden = ordered.length > 0;
  text($("#chat-empty"), "No messages in this chat yet.");
  // Newest at the bottom, in view: on opening, and when new ones come while at the bottom.
  if (before === 0 || (messages.size > before && atBottom)) list.scrollTop = list.scrollHeight;
  await markRead(ordered);
}

async function markRead(ordered) {
  const chat = chatRows.get(bare(chatId));
  if (!chat?.unreadCount) return;
  const unread = ordered.filter((m) => !m.fromMe && !marked.has(m.messageId)).slice(-Math.min(chat.unreadCount, 100));
  if (!unread.length) return;
  unread.forEach((m) => marked.add(m.messageId));
  await api(`/api/whatsapp/${enc(instance.id)}/read`, {
    method: "POST", body: { chatId, messageIds: unread.map((m) => m.messageId) },
  }).catch(() => {}); // a read mark that fails is tried again by nobody: it only colours a count
}

$("#load-older").addEventListener("click", async () => {
  const list = $("#chat");
  const height = list.scrollHeight;
  const answer = await fetchPage(messages.size, PAGE);
  older += answer.messages.length;
  hasOlder = answer.pagination.hasMore;
  await loadConversation();
  list.scrollTop = list.scrollHeight - height; // keep the message that was on top in place
});

function keepDraft() {
  if (chatId) drafts.set(bare(chatId), $("#send-form [name=message]").value);
}

async function openChat(id) {
  if (same(id, chatId)) return;
  keepDraft();
  chatId = id;
  messages = new Map();
  older = 0;
  hasOlder = false;
  stopReply();
  $("#send-form [name=message]").value = drafts.get(bare(id)) || "";
  text($("#chat-title"), chatLabel(id));
  $("#send-form").hidden = false;
  $("#chat").replaceChildren();
  for (const node of $("#chats").children) updateChatItem(node, chatRows.get(bare(node.dataset.key)) || { id: node.dataset.key });
  await loadConversation();
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
    chatId = null;
    messages = new Map();
    chatRows = new Map();
    drafts = new Map();
    titles = new Map();
    marked = new Set();
    older = 0;
    hasOlder = false;
    stopReply();
    $("#send-form").reset();
    $("#send-form").hidden = true;
    $("#chat").replaceChildren();
    $("#chats").replaceChildren();
    text($("#chat-title"), "Pick a chat");
    $("#load-older").hidden = true;
    $("#chat-empty").hidden = false;
    text($("#chat-empty"), "Pick a chat, or start one with a phone number.");
  },
  chatWith(id, name) {
    keepDraft();
    chatId = null;
    pending = id;
    if (name) titles.set(bare(id), name);
  },
  async refresh(current) {
    instance = current;
    sending(current);
    await loadChats();
    if (pending) {
      const id = pending;
      pending = null;
      await openChat(id);
    } else {
      await loadConversation();
    }
  },
};

onSubmit($("#new-chat-form"), async (data, form) => {
  const phone = data.get("phone").trim();
  if (!/^\+?[\d\s().-]{6,}$/.test(phone)) throw new Error("Enter a phone number, digits only (with the country code)");
  form.reset();
  await openChat(phone.replace(/\D/g, ""));
  $("#send-form [name=message]").focus();
});

$("#cancel-reply").addEventListener("click", () => {
  stopReply();
  $("#send-form [name=message]").focus();
});

onSubmit($("#send-form"), async (data, form) => {
  const body = { phone: chatId, message: data.get("message") };
  if (replyTo) body.quotedMessageId = replyTo.messageId;
  await api(`/api/whatsapp/${enc(instance.id)}/send`, { method: "POST", body });
  form.elements.message.value = "";
  drafts.delete(bare(chatId));
  stopReply();
  await loadChats();
  await loadConversation();
  const list = $("#chat");
  list.scrollTop = list.scrollHeight;
});

// -- contacts and groups --------------------------------------------------------------

function openFrom(id, name) {
  messagesPanel.chatWith(id, name);
  location.hash = `#/instances/${instance.id}/messages`;
}

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
          onclick: () => openFrom(c.number),
        }, "Chat"),
      ));
    $("#contacts-empty").hidden = contacts.length > 0;
  },
};

function member(p) {
  const who = p.phone ? `+${p.phone}` : p.id;
  return el("li", {}, who, p.role !== "member" ? el("span", { class: "badge" }, p.role) : null);
}

export const groupsPanel = {
  reset() { $("#groups").replaceChildren(); },
  async refresh(current) {
    instance = current;
    const { groups } = await api(`/api/whatsapp/${enc(current.id)}/groups`);
    keyed($("#groups"), groups, (g) => g.id, (g) =>
      el("li", { class: "group" },
        el("h3", {}, g.subject),
        el("p", { class: "muted group-about" }),
        el("ul", { class: "members", "aria-label": `Members of ${g.subject}` }),
        el("button", {
          type: "button", class: "secondary", "aria-label": `Open the chat of ${g.subject}`,
          onclick: () => openFrom(g.id, g.subject),
        }, "Open chat"),
      ), (node, g) => {
      text($("h3", node), g.subject);
      text($(".group-about", node), [plural(g.participants.length, "member"), g.announce ? "only admins send" : "", g.description].filter(Boolean).join(" · "));
      const signature = JSON.stringify(g.participants);
      const list = $(".members", node);
      if (list.dataset.shown !== signature) {
        list.dataset.shown = signature;
        list.replaceChildren(...g.participants.map(member));
      }
    });
    $("#groups-empty").hidden = groups.length > 0;
  },
};
