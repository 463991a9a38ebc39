// Freeport's web UI: the catalog, stream pages with their AsyncAPI, contract
// requests, the admin approval queue, contract status, an organization's
// API keys (issue, rotate, revoke; a new key is shown once). Plain JavaScript
// over the portal's REST API; the API key stays in this tab's
// sessionStorage. Everything shown is built as DOM nodes, never as HTML
// text, so catalog content cannot inject markup.
"use strict";

const KEY = "freeport.api_key";
const main = () => document.getElementById("main");
let me = null;
let refresh = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) el.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY), Accept: "application/json" };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!response.ok) {
    const error = new Error(`${(data && data.message) || response.statusText} (${(data && data.error_code) || response.status})`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function render(...nodes) {
  main().replaceChildren(...nodes);
}

function stateBadge(state) {
  return h("span", { class: `state state-${state}` }, state);
}

// Sign-in: the key is checked by asking who it belongs to.
function signIn() {
  const input = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true });
  render(h("div", { class: "card" },
    h("h2", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste the API key your hub admin gave you. It stays in this browser tab."),
    h("form", {
      id: "sign-in",
      onsubmit: async (event) => {
        event.preventDefault();
        sessionStorage.setItem(KEY, input.value.trim());
        try {
          await whoAmI();
          location.hash = "#/streams";
          route();
        } catch (error) {
          sessionStorage.removeItem(KEY);
          showError(error);
        }
      },
    }, h("label", {}, "API key", input), h("button", { type: "submit" }, "Sign in"))));
}

async function whoAmI() {
  me = await api("GET", "/v1/me");
  document.getElementById("nav").hidden = false;
  document.getElementById("nav-approvals").hidden = me.role !== "admin";
  document.getElementById("nav-keys").hidden = !me.organization;
  document.getElementById("whoami").textContent = me.role === "admin" ? "hub admin" : me.organization;
}

async function streams() {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  const search = h("input", { id: "search", type: "search", placeholder: "Search streams", value: query.get("q") || "" });
  const list = h("div", { id: "stream-list" });
  const load = async () => {
    const q = search.value.trim();
    const data = await api("GET", "/v1/streams" + (q ? "?q=" + encodeURIComponent(q) : ""));
    list.replaceChildren(...(data.streams.length ? data.streams.map((s) => h("div", { class: "card stream", "data-stream": s.name },
      h("h3", {}, h("a", { href: `#/streams/${encodeURIComponent(s.name)}` }, s.title || s.name)),
      h("p", {}, s.description),
      h("p", { class: "muted" }, `${s.name} · owned by ${s.owner} · ${s.classification} · ${s.partitions} partitions `, s.tags.map((t) => h("span", { class: "tag" }, t)))))
      : [h("p", { class: "muted" }, "No stream matches.")]));
  };
  render(h("h1", {}, "Streams"),
    h("form", { id: "search-form", onsubmit: (event) => { event.preventDefault(); load().catch(showError); } },
      search, h("button", { type: "submit" }, "Search")),
    list);
  await load();
}

// An AsyncAPI 3.0 document as readable sections: servers, channels with
// their messages' payload fields, operations.
function asyncapiView(doc) {
  // Local references (`#/components/messages/x`) point into the document.
  const deref = (node, depth = 0) => {
    if (!node || typeof node.$ref !== "string" || !node.$ref.startsWith("#/") || depth > 16) return node;
    const target = node.$ref.slice(2).split("/")
      .map((part) => decodeURIComponent(part).replace(/~1/g, "/").replace(/~0/g, "~"))
      .reduce((at, part) => (at == null ? at : at[part]), doc);
    return deref(target, depth + 1);
  };
  const servers = Object.entries(doc.servers || {});
  const channels = Object.entries(doc.channels || {});
  const operations = Object.entries(doc.operations || {});
  const fields = (schema) => {
    schema = deref(schema);
    const props = Object.entries((schema && schema.properties) || {}).map(([name, p]) => [name, deref(p) || {}]);
    if (!props.length) return h("p", { class: "muted" }, "No payload schema.");
    return h("table", { class: "payload" },
      h("tr", {}, h("th", {}, "field"), h("th", {}, "type"), h("th", {}, "description")),
      props.map(([name, p]) => h("tr", {}, h("td", {}, h("code", {}, name)),
        h("td", {}, [].concat(p.type || p.format || "").join(" | ")), h("td", {}, p.description || ""))));
  };
  return h("section", { id: "asyncapi", class: "card" },
    h("h2", {}, "AsyncAPI"),
    h("p", { class: "muted" }, `AsyncAPI ${doc.asyncapi} · ${doc.info.title} ${doc.info.version}`),
    doc.info.description ? h("p", {}, doc.info.description) : null,
    h("h3", {}, "Servers"),
    h("table", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "host"), h("th", {}, "protocol")),
      servers.map(([name, s]) => h("tr", {}, h("td", {}, name), h("td", {}, h("code", {}, s.host)), h("td", {}, s.protocol)))),
    h("h3", {}, "Channels"),
    channels.map(([name, c]) => h("div", { class: "channel", "data-channel": name },
      h("p", {}, h("strong", {}, c.address || name), c.description ? ` — ${c.description}` : ""),
      Object.entries(c.messages || {}).map(([mname, ref]) => {
        const m = deref(ref) || {};
        const payload = deref(m.payload);
        return h("div", {},
          h("p", { class: "muted" }, `message ${m.name || mname}${m.contentType ? " · " + m.contentType : ""}`),
          fields(payload && (payload.schema || payload)));
      }))),
    operations.length ? h("h3", {}, "Operations") : null,
    operations.length ? h("ul", {}, operations.map(([name, o]) => h("li", {}, `${name}: ${o.action}`))) : null);
}

async function streamPage(name) {
  const stream = await api("GET", `/v1/streams/${encodeURIComponent(name)}`);
  const doc = await api("GET", `/v1/streams/${encodeURIComponent(name)}/asyncapi`);
  const purpose = h("input", { id: "purpose", required: true });
  const cluster = h("input", { id: "destination-cluster", required: true, placeholder: "your cluster's name in the hub" });
  const topic = h("input", { id: "destination-topic", required: true });
  // Kafka: mirrored into a topic of yours. Push: read over HTTP (SSE,
  // WebSocket, REST Proxy consumers), no cluster needed.
  const delivery = h("select", { id: "delivery" },
    h("option", { value: "kafka" }, "Kafka: mirrored into my cluster"),
    h("option", { value: "push" }, "Push: read over HTTP (SSE, WebSocket, REST Proxy)"));
  const destination = h("fieldset", { id: "destination" },
    h("label", {}, "Destination cluster", cluster),
    h("label", {}, "Destination topic", topic));
  delivery.addEventListener("change", () => {
    const push = delivery.value === "push";
    destination.hidden = push;
    cluster.required = !push;
    topic.required = !push;
  });
  const form = me.role === "admin" ? null : h("div", { class: "card" },
    h("h2", {}, "Request access"),
    h("form", {
      id: "request-form",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const request = { stream: stream.name, purpose: purpose.value, delivery: delivery.value };
          if (delivery.value === "kafka") request.destination = { cluster: cluster.value, topic: topic.value };
          await api("POST", "/v1/contracts", request);
          location.hash = "#/contracts";
        } catch (error) { showError(error); }
      },
    },
    h("label", {}, "Purpose", purpose),
    h("label", {}, "Delivery", delivery),
    destination,
    h("button", { type: "submit", id: "request" }, "Request")));
  render(h("div", { class: "card" },
    h("h1", {}, stream.title || stream.name),
    h("p", {}, stream.description),
    h("p", { class: "muted" }, `${stream.name} · owned by ${stream.owner} · ${stream.classification} · schema v${stream.schema_version}`),
    stream.tags.map((t) => h("span", { class: "tag" }, t))),
  asyncapiView(doc), form);
}

function contractRow(c, actions) {
  return h("tr", { class: "contract", "data-contract": c.id, "data-stream": c.stream },
    h("td", {}, h("code", {}, c.id.slice(0, 8))),
    h("td", {}, c.stream),
    h("td", {}, c.consumer),
    h("td", {}, c.purpose),
    h("td", { class: "contract-delivery" }, c.destination
      ? `kafka: ${c.destination.cluster} / ${c.destination.topic}`
      : "push: over HTTP"),
    h("td", { class: "contract-state" }, stateBadge(c.state)),
    actions ? h("td", {}, actions) : null);
}

async function contracts() {
  const table = h("table", { id: "contracts" });
  const load = async () => {
    const data = await api("GET", "/v1/contracts");
    table.replaceChildren(
      h("tr", {}, ["id", "stream", "consumer", "purpose", "delivery", "state"].map((t) => h("th", {}, t))),
      ...data.contracts.map((c) => contractRow(c)));
  };
  render(h("h1", {}, "Contracts"), table);
  await load();
  // The state moves on its own (the link starts the mirror): keep it fresh.
  refresh = setInterval(() => load().catch(showError), 2000);
}

async function approvals() {
  const table = h("table", { id: "approval-queue" });
  const decide = (id, action) => async () => {
    try {
      await api("POST", `/v1/contracts/${id}/${action}`, { reason: `${action} in the web UI` });
      await load();
    } catch (error) { showError(error); }
  };
  const load = async () => {
    const data = await api("GET", "/v1/contracts?state=requested");
    table.replaceChildren(
      h("tr", {}, ["id", "stream", "consumer", "purpose", "delivery", "state", ""].map((t) => h("th", {}, t))),
      ...(data.contracts.length ? data.contracts.map((c) => contractRow(c, [
        h("button", { type: "button", class: "approve", "data-contract": c.id, onclick: decide(c.id, "approve") }, "Approve"),
        " ",
        h("button", { type: "button", class: "reject secondary", "data-contract": c.id, onclick: decide(c.id, "reject") }, "Reject"),
      ])) : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "Nothing waits for a decision."))]));
  };
  render(h("h1", {}, "Approval queue"), table);
  await load();
}

// The signed-in organization's API keys. A key just issued is shown once,
// in a box the user copies from; listings never hold a key.
async function keys() {
  const org = me.organization;
  const base = `/v1/orgs/${encodeURIComponent(org)}/keys`;
  const table = h("table", { id: "keys" });
  const issued = h("div", { id: "issued-key", class: "card", hidden: true });
  const show = (answer, what) => {
    issued.replaceChildren(
      h("h3", {}, what),
      h("p", { class: "muted" }, "Copy it now: it is not shown again."),
      h("code", { id: "new-key" }, answer.api_key));
    issued.hidden = false;
  };
  const act = (work) => async () => {
    try { await work(); await load(); } catch (error) { showError(error); }
  };
  const load = async () => {
    const data = await api("GET", base);
    table.replaceChildren(
      h("tr", {}, ["id", "name", "state", "created", "last used", "expires", ""].map((t) => h("th", {}, t))),
      ...data.keys.map((k) => h("tr", { class: "key", "data-key": k.key_id },
        h("td", {}, h("code", {}, k.key_id)),
        h("td", {}, k.name),
        h("td", { class: "key-state" }, stateBadge(k.state)),
        h("td", {}, new Date(k.created_at_ms).toLocaleString()),
        h("td", {}, k.last_used_ms ? new Date(k.last_used_ms).toLocaleString() : "never"),
        h("td", {}, k.expires_at_ms ? new Date(k.expires_at_ms).toLocaleString() : "never"),
        h("td", {}, k.state === "active" && k.key_id !== me.key_id ? [
          h("button", { type: "button", class: "rotate", "data-key": k.key_id,
            onclick: act(async () => show(await api("POST", `${base}/${k.key_id}/rotate`, { overlap_secs: 86400 }), `Successor of ${k.key_id}`)) }, "Rotate"),
          " ",
          h("button", { type: "button", class: "revoke secondary", "data-key": k.key_id,
            onclick: act(() => api("DELETE", `${base}/${k.key_id}`, { reason: "revoked in the web UI" })) }, "Revoke"),
        ] : k.key_id === me.key_id ? h("span", { class: "muted" }, "this session") : null))));
  };
  const name = h("input", { id: "key-name", placeholder: "What is it for?", maxlength: 100 });
  const form = h("form", {
    id: "new-key-form",
    onsubmit: (event) => {
      event.preventDefault();
      act(async () => show(await api("POST", base, { name: name.value.trim() }), "New key"))();
    },
  }, h("label", {}, "Name", name), h("button", { type: "submit" }, "Issue a key"));
  render(h("h1", {}, `API keys of ${org}`), issued, form, table);
  await load();
}

async function route() {
  if (refresh) { clearInterval(refresh); refresh = null; }
  showError(null);
  if (!sessionStorage.getItem(KEY)) return signIn();
  try {
    if (!me) await whoAmI();
    const path = location.hash.replace(/^#/, "").split("?")[0] || "/streams";
    const stream = path.match(/^\/streams\/(.+)$/);
    if (stream) await streamPage(decodeURIComponent(stream[1]));
    else if (path === "/contracts") await contracts();
    else if (path === "/approvals") await approvals();
    else if (path === "/keys" && me.organization) await keys();
    else await streams();
  } catch (error) {
    if (error.status === 401) {
      sessionStorage.removeItem(KEY);
      me = null;
      signIn();
    }
    showError(error);
  }
}

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  me = null;
  document.getElementById("nav").hidden = true;
  location.hash = "#/streams";
  route();
});
window.addEventListener("hashchange", route);
route();
