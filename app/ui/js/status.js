// What an instance's state means to a person: a label, a tone, and why it is not connected.
// Statuses are SPEC §4's: connecting, qr, connected, reconnecting, disconnected, logged_out,
// banned, outdated, disabled (and `connecting` with a QR code from servers before `qr`).

const clock = (iso) => new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const day = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

/** Problems sort first: the lower, the sooner. */
export const RANK = {
  banned: 0, logged_out: 1, outdated: 2, disabled: 3, disconnected: 4, reconnecting: 5,
  qr: 6, connecting: 7, connected: 9,
};

/** The state filters of the fleet's summary bar, in order, with the statuses each takes. */
export const GROUPS = [
  { key: "connected", label: "connected", statuses: ["connected"] },
  { key: "reconnecting", label: "reconnecting", statuses: ["reconnecting", "connecting"] },
  { key: "qr", label: "waiting for a scan", statuses: ["qr"] },
  { key: "disconnected", label: "disconnected", statuses: ["disconnected"] },
  { key: "logged_out", label: "logged out", statuses: ["logged_out"] },
  { key: "banned", label: "banned", statuses: ["banned"] },
  { key: "outdated", label: "outdated", statuses: ["outdated"] },
  { key: "disabled", label: "disabled", statuses: ["disabled"] },
];

/** The status as the console reads it (a QR code on screen is a wait for a scan). */
export function statusOf(instance) {
  const { status, connectionStatus = {} } = instance;
  if (status === "connecting" && connectionStatus.hasQr) return "qr";
  return status;
}

export function groupOf(instance) {
  const status = statusOf(instance);
  return (GROUPS.find((g) => g.statuses.includes(status)) || { key: status }).key;
}

// The server's reasons (`lastError`: a code, then maybe ": " and what the engine said), as a
// person reads them; an unknown one is shown as it came.
const REASONS = {
  qr_expired: "The QR codes ran out without a scan; Reconnect shows new ones",
  connection_lost: "The connection was lost",
  engine_error: "The engine failed",
  engine_crashed: "The engine stopped unexpectedly",
  stream_replaced: "Another client took this session over",
  logout: "Logged out from here",
  logged_out: "Unlinked from the phone",
  session_invalid: "The stored session is no longer valid; pair again",
  dead_session: "The connection had died",
  reconnect_requested: "A reconnect was asked for",
  banned: "WhatsApp banned the number for a while",
  client_outdated: "WhatsApp refuses this engine version",
  "pairing failed": "Pairing failed",
  "pairing ended": "The pairing ended without a scan",
  connect_failure: "WhatsApp refused the connection",
  "engine did not start": "The engine did not start",
  "connection ended": "The connection ended",
};

export function reasonText(raw) {
  if (!raw) return "";
  const cut = raw.indexOf(": ");
  const code = cut < 0 ? raw : raw.slice(0, cut);
  const detail = cut < 0 ? "" : raw.slice(cut + 2);
  const known = REASONS[code];
  if (!known) return raw;
  return detail ? `${known} (${detail})` : known;
}

/** {label, tone: ok|wait|bad, reason, problem} for an instance (list row or detail). */
export function human(instance) {
  const status = statusOf(instance);
  const { lastError, retryAt } = instance.connectionStatus || {};
  const reason = reasonText(lastError) || failedSend(instance) || "";
  switch (status) {
    case "connected":
      return { label: "Connected", tone: "ok", reason: "", problem: false };
    case "qr":
      return { label: "Waiting for QR scan", tone: "wait", reason, problem: false };
    case "connecting":
      return { label: "Connecting", tone: "wait", reason, problem: false };
    case "reconnecting":
      return {
        label: retryAt ? `Reconnecting (next try ${clock(retryAt)})` : "Reconnecting",
        tone: "wait", reason, problem: true,
      };
    case "disconnected":
      return { label: "Disconnected", tone: "bad", reason, problem: true };
    case "logged_out":
      return { label: "Logged out", tone: "bad", reason: reason || "Unlinked from the phone: pair again", problem: true };
    case "banned":
      return { label: retryAt ? `Banned until ${day(retryAt)}` : "Banned", tone: "bad", reason, problem: true };
    case "outdated":
      return { label: "Engine outdated", tone: "bad", reason: reason || "WhatsApp refuses this engine version: upgrade it", problem: true };
    case "disabled":
      return { label: "Disabled", tone: "bad", reason: reason || "Its owner is deactivated", problem: true };
    default:
      return { label: status, tone: "wait", reason, problem: false };
  }
}

// A Cloud instance that could not connect says why in its connection details.
function failedSend(instance) {
  const details = instance.connectionDetails;
  return details && details.error ? String(details.error) : "";
}

export function badge(node, instance) {
  const { label, tone } = human(instance);
  if (node.textContent !== label) node.textContent = label;
  const cls = `badge tone-${tone}`;
  if (node.className !== cls) node.className = cls;
  node.dataset.status = statusOf(instance);
}
