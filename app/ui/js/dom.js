// Small DOM helpers: build elements, show errors, switch views.

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

export function showError(node, error) {
  node.textContent = error ? error.message || String(error) : "";
  node.hidden = !error;
}

export function formError(form, error) {
  showError($("[data-error]", form), error);
}

/** Run a form's submit handler with its button disabled and its error shown. */
export function onSubmit(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("button[type=submit]", form);
    button.disabled = true;
    formError(form, null);
    try {
      await handler(new FormData(form), form);
    } catch (error) {
      formError(form, error);
    } finally {
      button.disabled = false;
    }
  });
}

export function showView(name) {
  for (const view of $$("main > section")) view.hidden = view.id !== `view-${name}`;
}

export function notice(message) {
  const node = $("#notice");
  node.textContent = message || "";
  node.hidden = !message;
}

export function badge(node, status) {
  node.textContent = status;
  node.className = `badge status-${status}`;
}

export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function totals(node, pairs) {
  node.replaceChildren(...pairs.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, String(value))]));
}
