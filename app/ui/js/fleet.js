// The fleet: every instance in one compact table, problems first, with a summary bar whose
// counts are filters, a search, bulk actions and live rows. Rows are updated in place by id
// from the server's stream, so focus, selection and clicks survive every update.

import { api, each, enc, follow, session } from "./api.js";
import { $, $$, ago, announce, confirmAction, el, plural, showError, text } from "./dom.js";
import { GROUPS, RANK, badge, groupOf, human, statusOf } from "./status.js";

const rows = new Map(); // id -> {node, instance}
const selected = new Set();
let filter = { state: "", q: "", all: false };
let close = null;
let counts = {};

/** The filter as the URL keeps it: #/instances?state=…&q=…&all=1 */
export function readFilter(query) {
  const params = new URLSearchParams(query || "");
  return { state: params.get("state") || "", q: params.get("q") || "", all: params.get("all") === "1" };
}

function writeFilter() {
  const params = new URLSearchParams();
  if (filter.state) params.set("state", filter.state);
  if (filter.q) params.set("q", filter.q);
  if (filter.all) params.set("all", "1");
  const query = params.toString();
  history.replaceState(null, "", `#/instances${query ? `?${query}` : ""}`);
}

function own(instance) {
  return !session.user || instance.userId === session.user.id;
}

function rowFor(instance) {
  const check = el("input", { type: "checkbox", "data-select": "" });
  check.addEventListener("change", () => {
    if (check.checked) selected.add(instance.id);
    else selected.delete(instance.id);
    updateBulk();
  });
  const node = el("tr", { "data-id": instance.id },
    el("td", {}, check),
    el("td", { class: "name" }, el("a", {}), el("span", { class: "reason" })),
    el("td", { class: "state" }, el("span", { class: "badge" })),
    el("td", { class: "phone" }),
    el("td", { class: "engine" }),
    el("td", { class: "since" }, el("time")),
    el("td", { class: "today num" }),
    el("td", { class: "hooks num" }),
  );
  return node;
}

function fill(node, instance) {
  const mine = own(instance);
  const state = human(instance);
  const check = $("[data-select]", node);
  check.disabled = !mine;
  check.setAttribute("aria-label", mine ? `Select ${instance.name}` : `${instance.name} (${instance.owner}'s, read-only)`);
  const link = $(".name a", node);
  text(link, instance.name);
  if (mine) link.setAttribute("href", `#/instances/${instance.id}`);
  else link.removeAttribute("href");
  const why = [state.reason, mine ? "" : `owner ${instance.owner}`].filter(Boolean).join(" · ");
  text($(".reason", node), why);
  badge($(".state .badge", node), instance);
  text($(".phone", node), instance.phone ? `+${instance.phone}` : "");
  text($(".engine", node), instance.engine);
  const since = $(".since time", node);
  if (since.getAttribute("datetime") !== instance.updatedAt) since.setAttribute("datetime", instance.updatedAt);
  text(since, ago(instance.updatedAt));
  const today = instance.messagesSentToday + instance.messagesReceivedToday;
  text($(".today", node), today);
  $(".today", node).title = `${instance.messagesSentToday} sent, ${instance.messagesReceivedToday} received today`;
  text($(".hooks", node), instance.failedWebhooks || "");
  node.classList.toggle("problem", state.problem);
}

function matches(instance) {
  if (filter.state === "problems" && !human(instance).problem) return false;
  if (filter.state && filter.state !== "problems" && groupOf(instance) !== filter.state) return false;
  if (!filter.q) return true;
  const q = filter.q.toLowerCase();
  if (instance.name.toLowerCase().includes(q)) return true;
  // A number (with or without +, spaces, dashes) also searches the phones.
  const digits = /^[\d\s+()-]+$/.test(q) ? q.replace(/\D/g, "") : "";
  return digits !== "" && (instance.phone || "").includes(digits);
}

function order(a, b) {
  const rank = (RANK[statusOf(a)] ?? 8) - (RANK[statusOf(b)] ?? 8);
  return rank || a.name.localeCompare(b.name) || a.id.localeCompare(b.id);
}

function render(answer) {
  const seen = new Set();
  for (const instance of answer.instances) {
    seen.add(instance.id);
    let row = rows.get(instance.id);
    if (!row) {
      row = { node: rowFor(instance), instance };
      rows.set(instance.id, row);
    }
    row.instance = instance;
    fill(row.node, instance);
  }
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.node.remove();
      rows.delete(id);
      selected.delete(id);
    }
  }
  counts = answer.counts;
  arrange();
  summary();
}

// Puts rows in order (moving only when the order changed) and hides those filtered out.
function arrange() {
  const body = $("#fleet tbody");
  const wanted = [...rows.values()].sort((a, b) => order(a.instance, b.instance)).map((r) => r.node);
  const focused = document.activeElement;
  const current = [...body.children];
  if (wanted.length !== current.length || wanted.some((node, i) => node !== current[i])) {
    body.append(...wanted);
    if (focused && body.contains(focused) && document.activeElement !== focused) focused.focus();
  }
  let shown = 0;
  for (const { node, instance } of rows.values()) {
    const show = matches(instance);
    if (node.hidden === show) node.hidden = !show;
    if (show) shown += 1;
    if (!show && selected.delete(instance.id)) $("[data-select]", node).checked = false;
  }
  $("#instances-empty").hidden = rows.size > 0;
  $("#instances-none-match").hidden = rows.size === 0 || shown > 0;
  $("#fleet").hidden = rows.size === 0;
  updateBulk();
}

function summary() {
  const node = $("#summary");
  const all = [...rows.values()].map((r) => r.instance);
  const problems = all.filter((i) => human(i).problem).length;
  const chips = [
    { key: "", label: `${all.length} in all` },
    ...GROUPS.map((g) => ({ key: g.key, label: `${all.filter((i) => groupOf(i) === g.key).length} ${g.label}` }))
      .filter((chip) => !chip.label.startsWith("0 ") || chip.key === filter.state),
    { key: "problems", label: `${problems} with problems` },
  ];
  const existing = new Map($$("button", node).map((b) => [b.dataset.state, b]));
  const wanted = chips.map((chip) => {
    let button = existing.get(chip.key);
    if (!button) {
      button = el("button", { type: "button", class: "chip", "data-state": chip.key });
      button.addEventListener("click", () => {
        filter.state = filter.state === chip.key ? "" : chip.key;
        writeFilter();
        arrange();
        summary();
        announce(`${$$("#fleet tbody tr:not([hidden])").length} instances shown`);
      });
    }
    text(button, chip.label);
    button.setAttribute("aria-pressed", String(filter.state === chip.key));
    return button;
  });
  const current = [...node.children];
  if (wanted.length !== current.length || wanted.some((b, i) => b !== current[i])) {
    const focused = document.activeElement;
    node.replaceChildren(...wanted);
    if (focused && node.contains(focused) && document.activeElement !== focused) focused.focus();
  }
}

function updateBulk() {
  const count = selected.size;
  text($("#selected-count"), count ? `${plural(count, "instance")} selected` : "None selected");
  for (const button of $$("[data-bulk]")) button.disabled = count === 0;
  const visible = [...rows.values()].filter((r) => !r.node.hidden && own(r.instance));
  const all = $("#select-all");
  all.checked = visible.length > 0 && visible.every((r) => selected.has(r.instance.id));
  all.indeterminate = !all.checked && visible.some((r) => selected.has(r.instance.id));
}

const BULK = {
  reconnect: { verb: "Reconnect", done: "reconnected", path: (id) => `/api/instances/${enc(id)}/reconnect`, method: "POST",
    why: "Each one drops its connection and connects again." },
  logout: { verb: "Log out", done: "logged out", path: (id) => `/api/instances/${enc(id)}/logout`, method: "POST",
    why: "Each one is unlinked from its phone; pairing again needs the phone." },
  delete: { verb: "Delete", done: "deleted", path: (id) => `/api/instances/${enc(id)}`, method: "DELETE",
    why: "Their sessions are removed; their history stays in the event store." },
};

async function bulk(kind) {
  const action = BULK[kind];
  const ids = [...selected];
  const names = ids.map((id) => rows.get(id)?.instance.name).filter(Boolean);
  const title = `${action.verb} ${plural(ids.length, "instance")}?`;
  const list = names.length <= 5 ? ` (${names.join(", ")})` : "";
  if (!(await confirmAction(title, `${action.verb} ${plural(ids.length, "instance")}${list}. ${action.why}`, `${action.verb} ${plural(ids.length, "instance")}`))) return;
  const result = $("#bulk-result");
  text(result, `${action.verb}: working on ${plural(ids.length, "instance")}…`);
  result.hidden = false;
  const outcomes = await each(ids, (id) => api(action.path(id), { method: action.method }));
  const failed = outcomes.map((o, i) => [o, ids[i]]).filter(([o]) => !o.ok);
  const done = ids.length - failed.length;
  const failures = failed.map(([o, id]) => `${rows.get(id)?.instance.name || id}: ${o.error.message}`);
  text(result, `${done} of ${plural(ids.length, "instance")} ${action.done}.${failures.length ? ` Failed: ${failures.join("; ")}` : ""}`);
  result.className = failed.length ? "error" : "ok";
  if (kind === "delete") for (const id of ids) if (!failed.some(([, f]) => f === id)) selected.delete(id);
  updateBulk();
}

function listen() {
  close?.();
  close = follow(`/api/fleet${filter.all ? "?all=true" : ""}`, {
    fleet: (answer) => answer && render(answer),
    signed_out: () => window.dispatchEvent(new CustomEvent("signed-out", { detail: "the session ended" })),
  });
}

export const fleetView = {
  title: "Instances",
  async open(query) {
    const wanted = readFilter(query);
    const everyoneChanged = wanted.all !== filter.all;
    filter = wanted;
    const search = $("#search");
    if (search.value !== filter.q) search.value = filter.q;
    $("#everyone").checked = filter.all;
    $("#everyone-label").hidden = session.user?.role !== "admin";
    if (everyoneChanged) {
      rows.clear();
      selected.clear();
      $("#fleet tbody").replaceChildren();
    }
    // The first answer at once (the stream may take a moment), then live.
    render(await api(`/api/fleet${filter.all ? "?all=true" : ""}`));
    if (everyoneChanged || !close) listen();
  },
  leave() {
    close?.();
    close = null;
  },
};

$("#search").addEventListener("input", (event) => {
  filter.q = event.target.value.trim();
  writeFilter();
  arrange();
});
$("#everyone").addEventListener("change", (event) => {
  filter.all = event.target.checked;
  writeFilter();
  fleetView.leave();
  rows.clear();
  selected.clear();
  $("#fleet tbody").replaceChildren();
  fleetView.open(location.hash.split("?")[1]).catch((error) => showError($("#bulk-result"), error));
});
$("#select-all").addEventListener("change", (event) => {
  for (const { node, instance } of rows.values()) {
    if (node.hidden || !own(instance)) continue;
    if (event.target.checked) selected.add(instance.id);
    else selected.delete(instance.id);
    $("[data-select]", node).checked = event.target.checked;
  }
  updateBulk();
});
for (const button of $$("[data-bulk]")) button.addEventListener("click", () => bulk(button.dataset.bulk));

// "5 min ago" grows old by itself.
setInterval(() => {
  for (const { node, instance } of rows.values()) text($(".since time", node), ago(instance.updatedAt));
}, 15000);
