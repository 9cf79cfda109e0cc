// The console's entry point: the session (a cookie kept across tabs, checked on load),
// hash routes (#/instances[?filter], #/instances/<id>/<tab>, #/usage, #/account, #/admin),
// the title and current page of each view, and the 2-second refresh of the open view
// (the fleet follows the server's stream instead).

import { api, session } from "./api.js";
import { $, $$, notice, onSubmit, showView } from "./dom.js";
import { accountView } from "./account.js";
import { adminView } from "./admin.js";
import { openCreate } from "./create.js";
import { detailView } from "./detail.js";
import { fleetView } from "./fleet.js";
import { usageView } from "./usage.js";

const POLL_MS = 2000;
let view = null;
let busy = false;

function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const [, name = "instances", id, tab] = path.split("/");
  if (name === "instances" && id) return { name: "detail", nav: "instances", view: detailView, args: [id, tab] };
  if (name === "usage") return { name: "usage", nav: "usage", view: usageView, args: [] };
  if (name === "account") return { name: "account", nav: "account", view: accountView, args: [] };
  if (name === "admin" && session.user?.role === "admin") return { name: "admin", nav: "admin", view: adminView, args: [] };
  return { name: "instances", nav: "instances", view: fleetView, args: [query] };
}

async function run(step) {
  busy = true;
  try {
    await step();
    notice(null);
  } catch (error) {
    if (session.user && !error.handled) notice(error.message);
  } finally {
    busy = false;
  }
}

async function navigate() {
  if (!session.user) return signedOut();
  const target = route();
  if (view && view !== target.view) view.leave?.();
  showView(target.name);
  for (const link of $$("#nav a[data-nav]")) {
    if (link.dataset.nav === target.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${target.view.title} · WhatsApp API`;
  const moved = view !== target.view;
  view = target.view;
  if (moved) $("#main").focus({ preventScroll: true });
  await run(() => view.open(...target.args));
}

function signedIn(answer) {
  session.user = answer.user;
  session.csrf = answer.csrfToken;
  $("#whoami").textContent = answer.user.email;
  $("#nav-admin").hidden = answer.user.role !== "admin";
  $("#nav").hidden = false;
  return navigate();
}

function signedOut(message) {
  view?.leave?.();
  session.user = null;
  session.csrf = null;
  view = null;
  $("#nav").hidden = true;
  showView("signin");
  document.title = "Sign in · WhatsApp API";
  notice(message || null);
}

onSubmit($("#signin-form"), async (data, form) => {
  const answer = await api("/api/auth/session", {
    method: "POST", body: { email: data.get("email"), password: data.get("password") },
  });
  form.reset();
  notice(null);
  await signedIn(answer);
});

$("#sign-out").addEventListener("click", async () => {
  try {
    await api("/api/auth/session", { method: "DELETE" });
  } catch { /* signed out already */ }
  signedOut();
});
$("#new-instance").addEventListener("click", openCreate);
window.addEventListener("signed-out", (event) => signedOut(`Signed out: ${event.detail}`));
window.addEventListener("hashchange", navigate);
setInterval(() => {
  if (view?.tick && !busy && !document.hidden) run(() => view.tick());
}, POLL_MS);

// Another tab may have signed in already: the cookie says so.
api("/api/auth/session")
  .then(signedIn)
  .catch(() => signedOut());
