// Small DOM helpers: build elements, show errors, switch views, confirm, announce.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** el("li", {class: "x", onclick: f}, "text", child) */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value != null) node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

/** Set a node's text only when it differs (no needless mutation, no lost selection). */
export function text(node, value) {
  const wanted = value == null ? "" : String(value);
  if (node.textContent !== wanted) node.textContent = wanted;
}

export function showError(node, error) {
  text(node, error ? error.message || String(error) : "");
  node.hidden = !error;
}

export function formError(form, error) {
  showError($("[data-error]", form), error);
}

/** Run a form's submit handler with its buttons disabled and its error shown. */
export function onSubmit(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = $$("button[type=submit], button:not([type])", form);
    buttons.forEach((b) => { b.disabled = true; });
    formError(form, null);
    try {
      await handler(new FormData(form), form, event.submitter);
    } catch (error) {
      formError(form, error);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}

export function showView(name) {
  for (const view of $$("main > section")) view.hidden = view.id !== `view-${name}`;
}

export function notice(message) {
  const node = $("#notice");
  text(node, message || "");
  node.hidden = !message;
}

/** Say something to screen readers (and nothing on screen). */
export function announce(message) {
  const node = $("#announce");
  node.textContent = "";
  setTimeout(() => { node.textContent = message; }, 50);
}

export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** "3 min ago", "2 h ago", "5 d ago" */
export function ago(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** A <dl> of label/value pairs, redrawn only when they changed. */
export function totals(node, pairs) {
  const signature = JSON.stringify(pairs);
  if (node.dataset.shown === signature) return;
  node.dataset.shown = signature;
  node.replaceChildren(...pairs.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, String(value))]));
}

/**
 * Keep a list's children in step with `items` by key: new ones made by `make`, every one
 * brought up to date by `update`, gone ones removed, order fixed only where it changed.
 * Nodes that stay are never replaced (focus and selected text survive).
 */
export function keyed(list, items, key, make, update) {
  const existing = new Map([...list.children].map((node) => [node.dataset.key, node]));
  const wanted = items.map((item) => {
    const k = String(key(item));
    let node = existing.get(k);
    if (!node) {
      node = make(item);
      node.dataset.key = k;
    }
    update?.(node, item);
    existing.delete(k);
    return node;
  });
  for (const node of existing.values()) node.remove();
  wanted.forEach((node, i) => {
    if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null);
  });
}

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

/**
 * Ask before something that cannot be undone; resolves true when confirmed.
 * The dialog is modal: focus stays in it and returns where it was afterwards.
 */
export function confirmAction(title, message, action) {
  const dialog = $("#confirm");
  text($("#confirm-title"), title);
  text($("#confirm-text"), message);
  text($("#confirm-ok"), action);
  const before = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      before?.focus?.();
      resolve(dialog.returnValue === "ok");
    }, { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    $("button[value=cancel]", dialog).focus();
  });
}
