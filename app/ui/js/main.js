// The console's entry point: sign-in, hash routes (#/instances, #/instances/<id>/<tab>,
// #/usage, #/admin) and the 2-second poll that keeps the open view live.

import { api, session } from "./api.js";
import { $, notice, onSubmit, showView } from "./dom.js";
import { adminView } from "./admin.js";
import { detailView } from "./detail.js";
import { instancesView } from "./instances.js";
import { usageView } from "./usage.js";

const POLL_MS = 2000;
let view = null;
let busy = false;

function route() {
  const [, name = "instances", id, tab] = location.hash.split("/");
  if (name === "instances" && id) return { name: "detail", view: detailView, args: [id, tab] };
  if (name === "usage") return { name: "usage", view: usageView, args: [] };
  if (name === "admin") return { name: "admin", view: adminView, args: [] };
  return { name: "instances", view: instancesView, args: [] };
}

async function run(step) {
  busy = true;
  try {
    await step();
    notice(null);
  } catch (error) {
    if (session.token) notice(error.message);
  } finally {
    busy = false;
  }
}

async function navigate() {
  if (!session.token) return signedOut();
  const target = route();
  showView(target.name);
  view = target.view;
  await run(() => view.open(...target.args));
}

async function signedIn() {
  const me = await api("/api/auth/me");
  $("#whoami").textContent = me.email;
  $("#nav-admin").hidden = me.role !== "admin";
  $("#nav").hidden = false;
  await navigate();
}

function signedOut(message) {
  session.token = null;
  view = null;
  $("#nav").hidden = true;
  showView("signin");
  notice(message || null);
}

onSubmit($("#signin-form"), async (data, form) => {
  const { token } = await api("/api/auth/login", {
    method: "POST", body: { email: data.get("email"), password: data.get("password") },
  });
  session.token = token;  // only the token is kept; the rest of the answer is dropped
  form.reset();
  notice(null);
  await signedIn();
});

$("#sign-out").addEventListener("click", () => signedOut());
window.addEventListener("signed-out", (event) => signedOut(`Signed out: ${event.detail}`));
window.addEventListener("hashchange", navigate);
setInterval(() => {
  if (view && !busy && !document.hidden) run(() => view.tick());
}, POLL_MS);

if (session.token) signedIn().catch((error) => signedOut(error.message));
else signedOut();
