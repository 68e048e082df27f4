// The firehook console: a client of the public API, nothing more. Everything shown comes
// from /v1 with the API key the operator signs in with, kept in sessionStorage (this tab
// only). Webhook data is untrusted: it is only ever put in the page as text.
"use strict";

const KEY_ITEM = "firehook.apiKey";
const $ = (id) => document.getElementById(id);

// ---- API ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || body?.code || "HTTP_" + status;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY_ITEM) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, json);
    if (res.status === 401 && sessionStorage.getItem(KEY_ITEM)) signOut(err.message);
    throw err;
  }
  return json;
}

// A route this gateway does not serve answers 404 NOT_FOUND (not a resource's 404).
async function served(path) {
  try {
    await api(path + "?limit=1");
    return true;
  } catch (e) {
    return !(e.status === 404 && e.code === "NOT_FOUND");
  }
}

const qs = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
};

// ---- Events stream --------------------------------------------------------------------
// fetch-based SSE: EventSource cannot send the Authorization header, and API keys must
// not travel in URLs. Reconnects with Last-Event-ID, so nothing is missed in between.

function watch(types, onEvent, onState) {
  const controller = new AbortController();
  let lastId = null;
  (async () => {
    while (!controller.signal.aborted) {
      try {
        const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY_ITEM) };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const res = await fetch("/v1/events/stream?types=" + types, {
          headers,
          signal: controller.signal,
        });
        if (!res.ok) throw new ApiError(res.status, null);
        onState(true);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = parseFrame(frame);
            if (event) {
              lastId = event.id;
              onEvent(event);
            }
          }
        }
      } catch (e) {
        if (controller.signal.aborted) return;
      }
      onState(false);
      await new Promise((r) => setTimeout(r, 2000));
    }
  })();
  return controller;
}

function parseFrame(frame) {
  const event = {};
  for (const line of frame.split("\n")) {
    const at = line.indexOf(": ");
    if (at <= 0) continue;
    const [field, value] = [line.slice(0, at), line.slice(at + 2)];
    if (field === "id") event.id = value;
    else if (field === "event") event.type = value;
    else if (field === "data") event.data = JSON.parse(value);
  }
  return event.id && event.data ? event : null;
}

// ---- DOM helpers ----------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const badge = (status) => h("span", { class: "badge badge-" + status }, status.replaceAll("_", " "));

function announce(message) {
  $("status").textContent = message;
}

function errorBox(e) {
  return h("p", { class: "error", role: "alert" }, `${e.message} (${e.code || "error"})`);
}

// `rows`: an array of rows, or a <tbody> the page keeps updating.
function table(caption, columns, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      rows instanceof HTMLTableSectionElement ? rows : h("tbody", {}, rows),
    ),
  );
}

function emptyRow(columns, text) {
  return h("tr", {}, h("td", { colspan: columns }, text));
}

function page(title, ...children) {
  const heading = h("h1", { tabindex: "-1" }, title);
  const view = $("view");
  view.replaceChildren(heading, ...children);
  heading.focus();
  document.title = title + " · firehook console";
}

// A form with labelled fields; `fields` are [name, label, attrs] (attrs.options -> select).
function form(id, fields, submitLabel, onSubmit) {
  const el = h(
    "form",
    { id, class: "inline-form" },
    fields.map(([name, label, attrs = {}]) => {
      const inputId = `${id}-${name}`;
      const { options, ...rest } = attrs;
      const control = options
        ? h("select", { id: inputId, name, ...rest }, options.map((o) => h("option", { value: o }, o || "any")))
        : h("input", { id: inputId, name, ...rest });
      return h("div", { class: "field" }, h("label", { for: inputId }, label), control);
    }),
    h("button", { type: "submit" }, submitLabel),
  );
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(el).entries());
    const button = el.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await onSubmit(values, el);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

function copyButton(text, label) {
  return h(
    "button",
    {
      type: "button",
      class: "quiet",
      "aria-label": label,
      onclick: async (event) => {
        try {
          await navigator.clipboard.writeText(text);
          event.target.textContent = "Copied";
          announce("Copied to the clipboard");
        } catch {
          announce("Copying is not allowed here; select the text instead");
        }
      },
    },
    "Copy",
  );
}

// ---- Pages ----------------------------------------------------------------------------

const PROVIDERS = [
  "clerk", "stripe", "shopify", "stytch", "supabase", "workos", "revenuecat", "brevo",
  "brimble", "standard", "generic",
];

async function connectionsPage() {
  const message = h("div", { "aria-live": "polite" });
  const list = h("div");
  const create = form(
    "new-connection",
    [
      ["provider", "Provider", { options: PROVIDERS, required: true }],
      ["name", "Name", { maxlength: 120 }],
      ["secret", "Signing secret", { type: "password", autocomplete: "off" }],
    ],
    "Create connection",
    async (v, el) => {
      const body = { provider: v.provider };
      if (v.name) body.name = v.name;
      if (v.secret) body.secrets = [v.secret];
      try {
        const created = await api("/v1/integrations/connections", { method: "POST", body });
        el.reset();
        message.replaceChildren(
          h("p", { class: "ok" }, `Created ${created.name} (${created.connectionId}).`),
          created.secret
            ? h("p", {}, "Its token, shown only now: ", h("code", {}, created.secret), " ",
                copyButton(created.secret, "Copy the token"))
            : null,
        );
        await load();
      } catch (e) {
        message.replaceChildren(errorBox(e));
      }
    },
  );
  async function load() {
    try {
      const { data } = await api("/v1/integrations/connections?limit=100");
      const full = await Promise.all(data.map((c) => api("/v1/integrations/connections/" + c.connectionId)));
      list.replaceChildren(
        full.length ? h("div", { class: "cards" }, full.map((c) => connectionCard(c, load))) :
          h("p", {}, "No connections yet: create one above, then paste its receive URL into the provider's dashboard."),
      );
    } catch (e) {
      list.replaceChildren(errorBox(e));
    }
  }
  page("Connections", h("h2", {}, "New connection"), create, message, h("h2", {}, "Your connections"), list);
  await load();
}

function connectionCard(c, reload) {
  const health = c.health || {};
  const counts = Object.entries(health.last24h || {}).map(([k, n]) => `${k.replaceAll("_", " ")}: ${n}`).join(", ");
  const out = h("div", { "aria-live": "polite" });
  const patch = async (body, done) => {
    try {
      await api("/v1/integrations/connections/" + c.connectionId, { method: "PATCH", body });
      announce(done);
      await reload();
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  };
  return h(
    "article",
    { class: "card", "aria-labelledby": "c-" + c.connectionId },
    h("h3", { id: "c-" + c.connectionId }, c.name, " ", h("span", { class: "muted" }, c.provider), " ",
      c.enabled ? badge("enabled") : badge("disabled")),
    h("dl", {},
      h("dt", {}, "Receive URL"),
      h("dd", { class: "url" }, h("code", {}, c.receiveUrl), " ", copyButton(c.receiveUrl, `Copy the receive URL of ${c.name}`)),
      h("dt", {}, "Last delivery"), h("dd", {}, when(health.lastDeliveryAt)),
      h("dt", {}, "Last verified"), h("dd", {}, when(health.lastVerifiedAt)),
      h("dt", {}, "Last rejected"), h("dd", {}, health.lastRejectedAt ? `${when(health.lastRejectedAt)} (${health.lastRejectReason || "?"})` : "—"),
      h("dt", {}, "Last 24 h"), h("dd", {}, counts || "nothing"),
      h("dt", {}, "Secrets"),
      h("dd", {}, h("ul", { class: "plain" }, (c.secrets || []).map((s) =>
        h("li", {}, h("code", {}, s.hint ? "…" + s.hint : "(short secret)"), ` added ${when(s.createdAt)} `,
          s.lastVerifiedAt !== undefined ? `, last verified ${when(s.lastVerifiedAt)}` : "",
          (c.secrets.length > 1)
            ? h("button", { type: "button", class: "quiet", "aria-label": `Remove secret ending ${s.hint}`,
                onclick: () => patch({ removeSecretId: s.secretId }, "Secret removed") }, "Remove")
            : null)))),
    ),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => patch({ enabled: !c.enabled }, c.enabled ? "Disabled" : "Enabled") },
        c.enabled ? "Disable" : "Enable"),
      form("add-secret-" + c.connectionId, [["addSecret", "Add a secret", { type: "password", autocomplete: "off", required: true }]],
        "Add secret", (v) => patch({ addSecret: v.addSecret }, "Secret added")),
    ),
    out,
  );
}

const DELIVERY_STATUSES = ["", "triggered", "no_published_automation", "ignored", "duplicate", "rejected"];

async function deliveriesPage() {
  const filters = { status: "", provider: "", connectionId: "", event: "" };
  const body = h("tbody");
  const detail = h("section", { id: "delivery-detail", "aria-live": "polite" });
  const live = h("p", { class: "live", id: "live-state" }, "Connecting to live updates…");
  const columns = ["Received", "Provider", "Event", "Status", "HTTP", "Reason", ""];
  const row = (d) => h("tr", { "data-delivery": d.deliveryId },
    h("td", {}, when(d.receivedAt)), h("td", {}, d.provider), h("td", {}, d.event || "—"),
    h("td", {}, badge(d.status)), h("td", {}, d.httpStatus), h("td", {}, d.reason || ""),
    h("td", {}, h("button", { type: "button", class: "quiet", "aria-label": `Open delivery ${d.deliveryId}`,
      onclick: () => openDelivery(d.deliveryId, detail) }, "Open")));
  async function load() {
    try {
      const { data } = await api("/v1/integrations/deliveries" + qs({ ...filters, limit: 50 }));
      body.replaceChildren(...(data.length ? data.map(row) : [emptyRow(columns.length, "No deliveries match.")]));
    } catch (e) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: columns.length }, errorBox(e))));
    }
  }
  const matches = (d) => Object.entries(filters).every(([k, v]) => !v || d[k] === v);
  const filterForm = form("delivery-filters", [
    ["status", "Status", { options: DELIVERY_STATUSES }],
    ["provider", "Provider", { options: ["", ...PROVIDERS] }],
    ["connectionId", "Connection id", {}],
    ["event", "Event", {}],
  ], "Filter", async (v) => {
    Object.assign(filters, v);
    await load();
  });
  page("Inbound deliveries", filterForm, live, table("Deliveries, newest first", columns, body), detail);
  await load();
  return watch("delivery", ({ data }) => {
    if (!matches(data)) return;
    body.querySelector("tr:not([data-delivery])")?.remove();
    body.prepend(row(data));
    announce(`New delivery: ${data.provider} ${data.event || ""} ${data.status}`);
  }, (on) => { live.textContent = on ? "Live: new deliveries appear as they arrive." : "Live updates paused; reconnecting…"; });
}

async function openDelivery(id, target) {
  try {
    const d = await api("/v1/integrations/deliveries/" + id);
    const result = h("div", { "aria-live": "polite" });
    const force = h("input", { type: "checkbox", id: "replay-force" });
    const headers = Object.entries(d.headers || {});
    target.replaceChildren(
      h("h2", { tabindex: "-1" }, `Delivery ${d.deliveryId}`),
      h("dl", {},
        h("dt", {}, "Status"), h("dd", {}, badge(d.status), d.reason ? ` (${d.reason})` : ""),
        h("dt", {}, "Received"), h("dd", {}, when(d.receivedAt)),
        h("dt", {}, "Connection"), h("dd", {}, h("code", {}, d.connectionId)),
        h("dt", {}, "Trigger"), h("dd", {}, d.triggerEventId || "—"),
        h("dt", {}, "Runs"), h("dd", {}, (d.automationRunIds || []).join(", ") || "—"),
        d.replayOf ? [h("dt", {}, "Replay of"), h("dd", {}, d.replayOf)] : null,
      ),
      table("Headers (signatures and tokens redacted)", ["Name", "Value"],
        headers.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, h("code", {}, String(v)))))),
      h("h3", {}, "Body"),
      d.body !== undefined ? h("pre", { class: "body", tabindex: "0" }, prettyJson(d.body)) : h("p", {}, "Not kept (rejected deliveries keep no body)."),
      d.status !== "rejected"
        ? h("div", { class: "actions" },
            h("label", { for: "replay-force", class: "check" }, force, " Force (fire again even if it fired)"),
            h("button", { type: "button", id: "replay", onclick: async () => {
              try {
                const r = await api(`/v1/integrations/deliveries/${d.deliveryId}/replay`, { method: "POST", body: { force: force.checked } });
                result.replaceChildren(h("p", { class: "ok", id: "replay-result" }, "Replayed: ", badge(r.status),
                  r.automationRunIds.length ? ` — runs ${r.automationRunIds.join(", ")}` : "", ` (new delivery ${r.deliveryId})`));
              } catch (e) {
                result.replaceChildren(errorBox(e));
              }
            } }, "Replay"))
        : null,
      result,
    );
    target.querySelector("h2").focus();
  } catch (e) {
    target.replaceChildren(errorBox(e));
  }
}

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

async function firesPage() {
  const body = h("tbody");
  const live = h("p", { class: "live", id: "live-state" }, "Connecting to live updates…");
  const columns = ["Received", "Trigger", "Source", "Outcome", "Contact", "Runs"];
  const row = (f) => h("tr", { "data-fire": f.triggerInstanceId },
    h("td", {}, when(f.receivedAt)), h("td", {}, h("code", {}, f.triggerEventId)), h("td", {}, f.source),
    h("td", {}, badge(f.outcome), f.reason ? ` (${f.reason})` : ""), h("td", {}, f.contactEmail || "—"),
    h("td", {}, (f.automationRunIds || []).length));
  try {
    const { data } = await api("/v1/trigger-instances?limit=50");
    body.replaceChildren(...(data.length ? data.map(row) : [emptyRow(columns.length, "No fires yet.")]));
  } catch (e) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: columns.length }, errorBox(e))));
  }
  page("Fires", live, table("Fires (trigger instances), newest first", columns, body));
  return watch("fire", ({ data }) => {
    body.querySelector("tr:not([data-fire])")?.remove();
    body.prepend(row(data));
    announce(`New fire: ${data.triggerEventId} ${data.outcome}`);
  }, (on) => { live.textContent = on ? "Live: new fires appear as they are recorded." : "Live updates paused; reconnecting…"; });
}

async function runsPage() {
  const body = h("tbody");
  const columns = ["Created", "Run", "Automation", "Trigger", "Contact", "Status"];
  const load = async (v = {}) => {
    try {
      const { data } = await api("/v1/automations/runs" + qs({ ...v, limit: 50 }));
      body.replaceChildren(...(data.length ? data.map((r) => h("tr", {},
        h("td", {}, when(r.createdAt)), h("td", {}, h("code", {}, r.automationRunId)), h("td", {}, r.automationId),
        h("td", {}, r.triggerEventId), h("td", {}, r.contactEmail), h("td", {}, badge(r.status)))) :
        [emptyRow(columns.length, "No runs match.")]));
    } catch (e) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: columns.length }, errorBox(e))));
    }
  };
  page("Runs", form("run-filters", [["triggerEventId", "Trigger id", {}], ["automationId", "Automation id", {}]], "Filter", load),
    table("Runs, newest first", columns, body));
  await load();
}

async function contactsPage() {
  const body = h("tbody");
  const columns = ["Email", "Name", "Subscribed", "Custom fields", "Updated"];
  const row = (c) => h("tr", {}, h("td", {}, c.email), h("td", {}, [c.firstName, c.lastName].filter(Boolean).join(" ") || "—"),
    h("td", {}, c.subscribed === null ? "—" : c.subscribed ? "yes" : "no"),
    h("td", {}, Object.entries(c.customFields || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ")),
    h("td", {}, when(c.updatedAt)));
  const load = async (v = {}) => {
    try {
      const result = await api("/v1/contacts" + qs({ email: v.email, limit: v.email ? undefined : 50 }));
      const rows = result.data ? result.data : [result];
      body.replaceChildren(...(rows.length ? rows.map(row) : [emptyRow(columns.length, "No contacts yet.")]));
    } catch (e) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: columns.length }, e.status === 404 ? "No contact with that email." : errorBox(e))));
    }
  };
  page("Contacts", form("contact-search", [["email", "Email", { type: "email" }]], "Find", load), table("Contacts", columns, body));
  await load();
}

async function subscriptionsPage() {
  const subs = h("tbody");
  const log = h("tbody");
  const out = h("div", { "aria-live": "polite" });
  try {
    const { data } = await api("/v1/webhook-subscriptions?limit=100");
    subs.replaceChildren(...(data.length ? data.map((s) => h("tr", {},
      h("td", {}, h("code", {}, s.url)), h("td", {}, (s.events || []).join(", ") || "paused"),
      h("td", {}, s.enabled ? badge("enabled") : badge("disabled")), h("td", {}, s.description || ""))) :
      [emptyRow(4, "No subscriptions.")]));
    const deliveries = await api("/v1/webhook-subscriptions/deliveries?limit=50");
    log.replaceChildren(...(deliveries.data.length ? deliveries.data.map((d) => {
      const last = (d.attempts || []).at(-1) || {};
      return h("tr", {}, h("td", {}, when(d.createdAt)), h("td", {}, d.eventType), h("td", {}, badge(d.status)),
        h("td", {}, (d.attempts || []).length), h("td", {}, last.httpStatus ?? last.error ?? "—"),
        h("td", {}, h("button", { type: "button", class: "quiet", "aria-label": `Retry ${d.deliveryId}`, onclick: async () => {
          try {
            await api(`/v1/webhook-subscriptions/deliveries/${d.deliveryId}/retry`, { method: "POST", body: {} });
            out.replaceChildren(h("p", { class: "ok" }, `Retry of ${d.deliveryId} sent.`));
          } catch (e) {
            out.replaceChildren(errorBox(e));
          }
        } }, "Retry")));
    }) : [emptyRow(6, "Nothing sent yet.")]));
  } catch (e) {
    out.replaceChildren(errorBox(e));
  }
  page("Outbound webhooks", table("Subscriptions", ["URL", "Events", "State", "Description"], subs),
    table("Deliveries, newest first", ["Created", "Event type", "Status", "Attempts", "Last result", ""], log), out);
}

const PAGES = {
  connections: connectionsPage,
  deliveries: deliveriesPage,
  fires: firesPage,
  runs: runsPage,
  contacts: contactsPage,
  subscriptions: subscriptionsPage,
};

// ---- Shell ----------------------------------------------------------------------------

let stream = null;

async function route() {
  if (!sessionStorage.getItem(KEY_ITEM)) return;
  stream?.abort();
  stream = null;
  const name = location.hash.replace(/^#\//, "") || "connections";
  const render = PAGES[name] || connectionsPage;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === "#/" + name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  stream = (await render()) || null;
}

async function showConsole() {
  $("sign-in").hidden = true;
  $("view").hidden = false;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  // Pages for APIs this gateway does not serve are left out.
  await Promise.all([...document.querySelectorAll("#nav [data-needs]")].map(async (item) => {
    item.hidden = !(await served(item.dataset.needs));
  }));
  await route();
}

function signOut(reason) {
  stream?.abort();
  sessionStorage.removeItem(KEY_ITEM);
  $("view").replaceChildren();
  $("view").hidden = true;
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  const error = $("sign-in-error");
  error.hidden = !reason;
  error.textContent = reason || "";
  $("api-key").focus();
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  const error = $("sign-in-error");
  sessionStorage.setItem(KEY_ITEM, key);
  try {
    await api("/v1/integrations/connections?limit=1");
    $("api-key").value = "";
    error.hidden = true;
    await showConsole();
  } catch (e) {
    sessionStorage.removeItem(KEY_ITEM);
    error.textContent = e.status === 401
      ? `That API key was not accepted: ${e.message} (${e.code}).`
      : `The gateway could not be reached: ${e.message}.`;
    error.hidden = false;
    $("api-key").focus();
  }
});
$("sign-out").addEventListener("click", () => signOut(""));
window.addEventListener("hashchange", route);
if (sessionStorage.getItem(KEY_ITEM)) showConsole();
