// The signed-in user's account: who they are, their API key (shown or rotated after the
// password is given again) and a password change.

import { api, session } from "./api.js";
import { $, onSubmit, text, totals } from "./dom.js";

export const accountView = {
  title: "Account",
  async open() {
    const me = await api("/api/auth/me");
    totals($("#profile"), [
      ["E-mail", me.email], ["Name", [me.firstName, me.lastName].filter(Boolean).join(" ") || "—"],
      ["Role", me.role],
    ]);
  },
  leave() {
    // The key is shown only while the page is open.
    text($("#api-key"), "");
    $("#api-key").hidden = true;
  },
};

onSubmit($("#api-key-form"), async (data, form, submitter) => {
  const password = data.get("password");
  const shown = $("#api-key");
  if (submitter?.name === "rotate") {
    const { apiKey } = await api("/api/auth/api-key", { method: "POST", body: { currentPassword: password } });
    text(shown, `New key (the old one no longer works): ${apiKey}`);
  } else {
    // Signing in again with the password proves it; the answer carries the key.
    const { user } = await api("/api/auth/login", { method: "POST", body: { email: session.user.email, password } });
    text(shown, user.apiKey ? `Your key: ${user.apiKey}` : "The key cannot be shown (the server's secret changed): rotate it.");
  }
  shown.hidden = false;
  form.reset();
});

onSubmit($("#password-form"), async (data, form) => {
  $("[data-ok]", form).hidden = true;
  const answer = await api("/api/auth/password", {
    method: "POST", body: { currentPassword: data.get("currentPassword"), newPassword: data.get("newPassword") },
  });
  if (answer.csrfToken) session.csrf = answer.csrfToken; // this console's renewed session
  form.reset();
  $("[data-ok]", form).hidden = false;
});
