// The instance list (with live status) and the form that creates an instance.

import { api } from "./api.js";
import { $, badge, el, onSubmit } from "./dom.js";

function item(instance) {
  const status = el("span");
  badge(status, instance.status);
  const { lastError } = instance.connectionStatus;
  if (lastError) status.title = lastError;  // why it is not connected, on hover
  return el("li", { "data-id": instance.id },
    el("a", { href: `#/instances/${instance.id}` },
      el("strong", {}, instance.name),
      status,
      el("span", { class: "muted" }, instance.phone ? `+${instance.phone}` : instance.engine),
    ),
  );
}

export const instancesView = {
  async open() {
    await this.tick();
  },
  async tick() {
    const { instances } = await api("/api/instances");
    $("#instance-list").replaceChildren(...instances.map(item));
    $("#instances-empty").hidden = instances.length > 0;
  },
};

onSubmit($("#create-form"), async (data, form) => {
  const created = await api("/api/instances", {
    method: "POST", body: { name: data.get("name").trim(), engine: data.get("engine") },
  });
  form.reset();
  location.hash = `#/instances/${created.id}/pair`;
});
