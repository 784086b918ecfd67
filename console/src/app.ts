// The cix operator console: a single-page app on the node's admin listener. Everything it
// loads comes from the node itself; the map draws the boundaries the node holds, no tiles.
import * as L from "leaflet";
import { feature } from "topojson-client";

type J = any;
let csrf = "";
let role = "";
const main = document.getElementById("main") as HTMLElement;

// Builds an element; strings become text nodes (never HTML).
function h(tag: string, attrs: Record<string, any> = {}, ...kids: (Node | string | null | undefined)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
  }
  for (const k of kids) if (k !== null && k !== undefined) el.append(typeof k === "string" ? document.createTextNode(k) : k);
  return el;
}

async function api(path: string, body?: J): Promise<J> {
  const init: RequestInit = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.method = "POST";
    init.headers = { "Content-Type": "application/json", "X-CSRF-Token": csrf };
    init.body = JSON.stringify(body);
  }
  const r = await fetch("/console/api/" + path, init);
  const v = await r.json().catch(() => ({}));
  if (r.status === 401 && path !== "login") { go("/console/login"); throw new Error(v.error || "not logged in"); }
  if (!r.ok) throw new Error(v.error || r.statusText);
  return v;
}

function table(cols: string[], rows: (Node | string)[][], caption: string): HTMLElement {
  return h("table", {}, h("caption", { class: "skip-caption" }, caption),
    h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))));
}

const pages: [string, string][] = [
  ["/console/status", "Status"], ["/console/peers", "Peers"], ["/console/catalogue", "Catalogue"],
  ["/console/map", "Map"], ["/console/requests", "Requests"], ["/console/transfers", "Transfers"],
  ["/console/audit", "Audit log"], ["/console/revocations", "Revocations"],
];

function link(href: string, text: string): HTMLElement {
  return h("a", { href, onclick: (e: Event) => { e.preventDefault(); go(href); } }, text);
}

function nav() {
  const n = document.getElementById("nav")!;
  n.replaceChildren(...(role ? pages.map(([p, t]) => link(p, t)) : []));
  for (const a of n.querySelectorAll("a")) if (a.getAttribute("href") === location.pathname) a.setAttribute("aria-current", "page");
  const who = document.getElementById("who")!;
  who.replaceChildren();
  if (role) who.append(h("span", {}, `${who.dataset.user} (${role}) `), h("button", { class: "secondary", onclick: logout }, "Log out"));
}

async function logout() {
  await api("logout", {}).catch(() => undefined);
  role = ""; csrf = ""; go("/console/login");
}

function go(path: string) {
  if (location.pathname !== path) history.pushState({}, "", path);
  render().catch((e) => show(h("p", { class: "error", role: "alert" }, String(e.message || e))));
}
window.addEventListener("popstate", () => go(location.pathname));

function show(...kids: HTMLElement[]) {
  main.replaceChildren(...kids);
  nav();
  main.focus();
}

function loginPage() {
  const msg = h("p", { role: "alert", class: "error" });
  const name = h("input", { id: "name", name: "name", autocomplete: "username" }) as HTMLInputElement;
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password" }) as HTMLInputElement;
  const tok = h("input", { id: "token", name: "token", type: "password", autocomplete: "off" }) as HTMLInputElement;
  const form = h("form", { onsubmit: async (e: Event) => {
    e.preventDefault();
    const body = tok.value ? { token: tok.value } : { name: name.value, password: pass.value };
    try { const s = await api("login", body); started(s); go("/console/status"); } catch (err: any) { msg.textContent = err.message; }
  } },
    h("label", { for: "name" }, "User name"), name,
    h("label", { for: "password" }, "Password"), pass,
    h("p", {}, "or"),
    h("label", { for: "token" }, "Node admin token"), tok,
    h("p", {}, h("button", { type: "submit" }, "Log in")), msg);
  show(h("h1", {}, "Log in"), form);
}

function started(s: J) {
  csrf = s.csrf; role = s.role;
  (document.getElementById("who") as HTMLElement).dataset.user = s.user;
  live();
}

let source: EventSource | null = null;
function live() {
  if (source) return;
  source = new EventSource("/console/api/events");
  const refresh = (pathPrefix: string) => () => { if (location.pathname.startsWith(pathPrefix)) render().catch(() => undefined); };
  source.addEventListener("peers", refresh("/console/peers"));
  source.addEventListener("requests", refresh("/console/requests"));
  source.addEventListener("transfers", refresh("/console/transfers"));
  source.addEventListener("catalogue", refresh("/console/catalogue"));
  source.addEventListener("ended", () => { source?.close(); source = null; role = ""; go("/console/login"); });
}

async function statusPage() {
  const s = await api("status");
  const rows = [["Agency", s.name], ["Jurisdiction", s.jurisdiction], ["did:key", s.did], ["Health", s.health.status],
    ["Uptime (s)", String(s.uptime_secs)], ["Peers", String(s.peers)], ["Catalogue entries", String(s.catalogue)],
    ["Own datasets", String(s.own_datasets)], ["Pending requests", String(s.pending_requests)],
    ["Revocations", String(s.revocations)], ["Audit records", String(s.audit_records)], ["Version", s.version]];
  show(h("h1", {}, "Node status"), table(["", "value"], rows.map(([k, v]) => [k, h("code", {}, String(v))]), "Node status"));
}

async function peersPage() {
  const list: J[] = await api("peers");
  show(h("h1", {}, "Peers"), table(["Agency", "Jurisdiction", "State", "Latency (ms)", "Score", "PeerId"],
    list.map((p) => [p.agency ?? "-", p.jurisdiction ?? "-", p.state, p.latency_ms == null ? "-" : String(p.latency_ms),
      p.gossip_score == null ? "-" : p.gossip_score.toFixed(2), h("code", {}, p.peer_id)]), "Peers"));
}

function datasetLink(id: string, title: string) { return link("/console/datasets/" + id, title); }

async function cataloguePage() {
  const q = new URLSearchParams(location.search);
  const input = h("input", { id: "q", type: "search", value: q.get("q") ?? "" }) as HTMLInputElement;
  const domain = h("select", { id: "domain" }, ...["", "energy", "water", "transport", "waste", "ict"].map((d) => h("option", { value: d }, d || "any"))) as HTMLSelectElement;
  domain.value = q.get("domain") ?? "";
  const results = h("div", { "aria-live": "polite" });
  const run = async () => {
    const p = new URLSearchParams();
    if (input.value) p.set("q", input.value);
    if (domain.value) p.set("domain", domain.value);
    const r = await api("search?" + p.toString());
    const facetList = h("ul", { "aria-label": "Facets" });
    for (const name of ["domain", "spectrum", "data_type", "publisher"]) {
      const counts = (r.facets?.[name] ?? {}) as Record<string, number>;
      const parts = Object.entries(counts).map(([k, n]) => `${k} (${n})`).join(", ");
      if (parts) facetList.append(h("li", {}, `${name}: ${parts}`));
    }
    results.replaceChildren(h("p", {}, `${r.total} dataset(s)`), facetList, table(["Title", "Publisher", "Spectrum", "Version", "Modified"],
      (r.hits ?? []).map((x: J) => [datasetLink(x.dataset, x.title), x.publisher ?? "-", x.level ?? "-", String(x.version), x.modified ?? "-"]), "Search results"));
  };
  const form = h("form", { class: "filters", role: "search", onsubmit: (e: Event) => { e.preventDefault(); run().catch((err) => results.replaceChildren(h("p", { class: "error" }, err.message))); } },
    h("div", {}, h("label", { for: "q" }, "Search"), input), h("div", {}, h("label", { for: "domain" }, "Domain"), domain), h("button", { type: "submit" }, "Search"));
  show(h("h1", {}, "Catalogue"), form, results);
  await run();
}

async function datasetPage(id: string) {
  const d = await api("datasets/" + encodeURIComponent(id));
  const e = d.entry, rec = d.record;
  const dict: J[] = rec.iso?.dictionary ?? [];
  show(h("h1", {}, e.title),
    table(["", "value"], [["Dataset", h("code", {}, e.dataset)], ["Publisher", e.publisher], ["Spectrum", e.spectrum], ["Domain", e.domain],
      ["Data type", e.data_type], ["Version", String(e.version)], ["Media type", e.media_type], ["Bytes", String(e.bytes)], ["Modified", e.modified],
      ["Description", rec.description ?? ""]], "Entry"),
    h("h2", {}, "Data dictionary"), table(["Field", "Type", "Description"], dict.map((f) => [f.name ?? "-", f.type ?? f.datatype ?? "-", f.description ?? ""]), "Data dictionary"),
    h("h2", {}, "Versions"), table(["Version", "Modified"], (d.versions?.versions ?? []).map((v: J) => [String(v.version), v.modified ?? "-"]), "Versions"),
    h("h2", {}, "Quality"), h("pre", {}, JSON.stringify(d.quality ?? {}, null, 1)),
    h("h2", {}, "Grants"), table(["Direction", "Audience", "State", "Expires"], d.grants.map((g: J) => [g.direction, h("code", {}, g.audience), g.state, String(g.expires ?? "-")]), "Grants"));
}

const colours: Record<string, string> = { energy: "#b35900", water: "#005a9c", transport: "#6a1b9a", waste: "#2e7d32", ict: "#ad1457" };

async function mapPage() {
  const m = await api("map");
  const dom = h("select", { id: "f-domain" }, ...["", "energy", "water", "transport", "waste", "ict", "cross-domain"].map((d) => h("option", { value: d }, d || "any"))) as HTMLSelectElement;
  const spec = h("select", { id: "f-spectrum" }, ...["", "open", "shared-public", "shared-group", "shared-named", "closed"].map((d) => h("option", { value: d }, d || "any"))) as HTMLSelectElement;
  const when = h("input", { id: "f-time", type: "date" }) as HTMLInputElement;
  const box = h("div", { id: "map", role: "region", "aria-label": "Map of dataset coverage" });
  const list = h("ul", { "aria-label": "Datasets on the map" });
  show(h("h1", {}, "Map"), h("div", { class: "filters" },
    h("div", {}, h("label", { for: "f-domain" }, "Domain"), dom), h("div", {}, h("label", { for: "f-spectrum" }, "Spectrum"), spec),
    h("div", {}, h("label", { for: "f-time" }, "Covers date"), when)), box, h("h2", {}, "Datasets shown"), list);
  const map = L.map(box, { attributionControl: false, zoomSnap: 0.25 });
  const layer = L.featureGroup().addTo(map);
  const draw = () => {
    layer.clearLayers();
    list.replaceChildren();
    for (const d of m.datasets as J[]) {
      if (dom.value && d.domain !== dom.value) continue;
      if (spec.value && d.spectrum !== spec.value) continue;
      if (when.value && d.temporal) {
        if (d.temporal.start && d.temporal.start.slice(0, 10) > when.value) continue;
        if (d.temporal.end && d.temporal.end.slice(0, 10) < when.value) continue;
      }
      const colour = colours[d.domain] ?? "#333";
      const open = () => go("/console/datasets/" + d.dataset);
      let shape: J = d.shape;
      if (shape && shape.type === "Topology") {
        const objs = Object.values(shape.objects) as J[];
        shape = { type: "FeatureCollection", features: objs.flatMap((o) => { const f: J = feature(shape, o); return f.features ?? [f]; }) };
      }
      if (shape) L.geoJSON(shape, { style: { color: "#555", weight: 1, fillColor: colour, fillOpacity: 0.15 } }).on("click", open).bindTooltip(d.title).addTo(layer);
      if (d.bbox) {
        const [w, s, e, n] = d.bbox;
        L.rectangle([[s, w], [n, e]], { color: colour, weight: 2, fill: false, dashArray: "4" }).on("click", open).bindTooltip(d.title).addTo(layer);
      }
      list.append(h("li", {}, datasetLink(d.dataset, d.title), ` (${d.domain}, ${d.spectrum})`));
    }
    const b = layer.getBounds();
    if (b.isValid()) map.fitBounds(b); else map.setView([20, 0], 2);
  };
  for (const el of [dom, spec, when]) el.addEventListener("change", draw);
  draw();
}

async function requestsPage() {
  const r = await api("requests");
  const msg = h("p", { role: "status" });
  const act = (id: string, what: "approve" | "deny") => async () => {
    try {
      const body = what === "deny" ? { reason: prompt("Reason for the denial") ?? "" } : {};
      await api(`requests/${id}/${what}`, body);
      msg.textContent = `request ${id} ${what === "approve" ? "approved" : "denied"}`;
      msg.className = "ok";
      await requestsPage();
    } catch (e: any) { msg.textContent = e.message; msg.className = "error"; }
  };
  const canDecide = role === "approver" || role === "admin";
  show(h("h1", {}, "Request queue"), msg,
    h("h2", {}, "For this node's data"),
    table(["Dataset", "Requester", "Purpose", "State", ""], r.incoming.map((x: J) => [x.title ?? x.dataset, h("code", {}, x.requester), x.purpose, x.state + (x.reason ? `: ${x.reason}` : ""),
      x.state === "pending" && canDecide ? h("span", {}, h("button", { onclick: act(x.request, "approve"), "aria-label": `Approve request ${x.request}` }, "Approve"), " ",
        h("button", { class: "secondary", onclick: act(x.request, "deny"), "aria-label": `Deny request ${x.request}` }, "Deny")) : ""]), "Incoming requests"),
    h("h2", {}, "This node's own requests"),
    table(["Dataset", "Purpose", "State"], r.outgoing.map((x: J) => [h("code", {}, x.dataset), x.purpose, x.state]), "Outgoing requests"));
}

async function transfersPage() {
  const t = await api("transfers");
  show(h("h1", {}, "Transfers"),
    table(["Dataset", "Progress", "State"], t.transfers.map((x: J) => {
      const done = x.verified ?? x.bytes ?? 0, total = x.total ?? x.size ?? 0;
      return [h("code", {}, x.dataset ?? "-"), h("progress", { max: total || 1, value: done, "aria-label": "bytes verified" }), x.state ?? "-"];
    }), "Running transfers"),
    h("h2", {}, "Finished (receipts)"),
    table(["Dataset", "Role", "Bytes", "Receipt"], t.receipts.map((x: J) => [h("code", {}, x.dataset ?? "-"), x.role ?? "-", String(x.bytes ?? "-"), h("code", {}, (x.id ?? "").slice(0, 16))]), "Receipts"));
}

async function auditPage() {
  const a = await api("audit?limit=200");
  const verdict = h("p", { role: "status" });
  const verify = async () => {
    const v = await api("audit/verify");
    verdict.textContent = v.ok ? `verified: ${v.records} records, chain intact` : `NOT verified: ${v.error}`;
    verdict.className = v.ok ? "ok" : "error";
  };
  show(h("h1", {}, "Audit log"), h("p", {}, `${a.total} records; newest first`), h("button", { onclick: verify }, "Verify the log"), verdict,
    table(["#", "When", "Kind", "Detail"], a.records.map((r: J) => [String(r.seq), new Date(r.at * 1000).toISOString(), r.kind, r.detail ?? r.reason ?? r.purpose ?? ""]), "Audit records"));
}

async function revocationsPage() {
  const list: J[] = await api("revocations");
  show(h("h1", {}, "Revocations"), table(["Revoked delegation", "By", "Reason"], list.map((r) => [h("code", {}, r.revoked), h("code", {}, r.by ?? "-"), r.reason ?? ""]), "Revocations"));
}

async function render() {
  const p = location.pathname.replace(/\/$/, "");
  if (p === "/console/login") return loginPage();
  if (!role) {
    try { started(await api("session")); } catch { return; }
  }
  if (p === "/console" || p === "/console/status") return statusPage();
  if (p === "/console/peers") return peersPage();
  if (p === "/console/catalogue") return cataloguePage();
  if (p === "/console/map") return mapPage();
  if (p.startsWith("/console/datasets/")) return datasetPage(decodeURIComponent(p.slice("/console/datasets/".length)));
  if (p === "/console/requests") return requestsPage();
  if (p === "/console/transfers") return transfersPage();
  if (p === "/console/audit") return auditPage();
  if (p === "/console/revocations") return revocationsPage();
  show(h("h1", {}, "Not found"));
}

go(location.pathname);
