// The cix operator console: a single-page app on the node's admin listener. Everything it
// loads comes from the node itself; the map draws the boundaries the node holds, no tiles.
import * as L from "leaflet";
import { feature } from "topojson-client";

type J = any;
let csrf = "";
let role = "";
const main = document.getElementById("main") as HTMLElement;

// What a page puts on screen. `mounted` runs once its elements are in the document (Leaflet
// needs a sized container); `topics` are the live-update topics that refresh it, by running
// `refresh` when given, else the whole page again (without moving the keyboard focus).
type View = { kids: Node[]; mounted?: () => void | Promise<void>; topics?: string[]; refresh?: () => Promise<void> };

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
  if (r.status === 401 && path !== "login") {
    role = "";
    go("/console/login");
    throw new Error(v.error || "not logged in");
  }
  if (!r.ok) throw new Error(v.error || r.statusText);
  return v;
}

function table(cols: string[], rows: (Node | string)[][], caption: string): HTMLElement {
  return h("table", {}, h("caption", { class: "skip-caption" }, caption),
    h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))));
}

function when(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "-";
}

const pages: [string, string][] = [
  ["/console/status", "Status"], ["/console/peers", "Peers"], ["/console/catalogue", "Catalogue"],
  ["/console/map", "Map"], ["/console/requests", "Requests"], ["/console/transfers", "Transfers"],
  ["/console/audit", "Audit log"], ["/console/revocations", "Revocations"],
];

function link(href: string, text: string, label?: string): HTMLElement {
  return h("a", { href, "aria-label": label, onclick: (e: Event) => { e.preventDefault(); go(href); } }, text);
}

function nav() {
  const n = document.getElementById("nav")!;
  n.replaceChildren(...(role ? pages.map(([p, t]) => link(p, t)) : []));
  for (const a of n.querySelectorAll("a")) if (a.getAttribute("href") === location.pathname) a.setAttribute("aria-current", "page");
  // Rebuilt only when it changes: it is a live region, and every page render calls this.
  const who = document.getElementById("who")!;
  const label = role ? `${who.dataset.user} (${role})` : "";
  if (who.dataset.shown === label) return;
  who.dataset.shown = label;
  who.replaceChildren();
  if (role) who.append(h("span", {}, label + " "), h("button", { class: "secondary", onclick: logout }, "Log out"));
}

async function logout() {
  await api("logout", {}).catch(() => undefined);
  source?.close();
  source = null;
  role = ""; csrf = ""; go("/console/login");
}

// Renders are numbered: one that finishes after a newer one started is dropped, so a slow
// answer or a live refresh never paints over the page the person has moved to.
let renders = 0;
let current: View | null = null;

function go(path: string) {
  if (location.pathname + location.search !== path) history.pushState({}, "", path);
  decided = null;
  render(true);
}
window.addEventListener("popstate", () => render(true));

async function render(focus: boolean) {
  const mine = ++renders;
  let view: View;
  try {
    view = await viewOf(location.pathname.replace(/\/$/, ""));
  } catch (e: any) {
    if (mine !== renders) return;
    view = { kids: [h("p", { class: "error", role: "alert" }, String(e?.message || e))] };
  }
  if (mine !== renders) return;
  current = view;
  main.replaceChildren(...view.kids);
  nav();
  try { await view.mounted?.(); } catch (e: any) { main.append(h("p", { class: "error", role: "alert" }, String(e?.message || e))); }
  if (focus) {
    window.scrollTo(0, 0);
    main.focus({ preventScroll: true });
  }
}

function loginPage(): View {
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
  return { kids: [h("h1", {}, "Log in"), form] };
}

function started(s: J) {
  csrf = s.csrf; role = s.role;
  (document.getElementById("who") as HTMLElement).dataset.user = s.user;
  live();
}

// Live updates: each topic refreshes the page on screen when that page listens to it.
let source: EventSource | null = null;
function live() {
  if (source) return;
  source = new EventSource("/console/api/events");
  for (const topic of ["peers", "requests", "transfers", "catalogue", "revocations"]) {
    source.addEventListener(topic, () => {
      const v = current;
      if (!v?.topics?.includes(topic)) return;
      (v.refresh ? v.refresh() : render(false)).catch(() => undefined);
    });
  }
  source.addEventListener("ended", () => { source?.close(); source = null; role = ""; go("/console/login"); });
}

async function statusPage(): Promise<View> {
  const s = await api("status");
  const rows = [["Agency", s.name], ["Jurisdiction", s.jurisdiction], ["did:key", s.did], ["Health", s.health.status],
    ["Uptime (s)", String(s.uptime_secs)], ["Peers", String(s.peers)], ["Catalogue entries", String(s.catalogue)],
    ["Own datasets", String(s.own_datasets)], ["Pending requests", String(s.pending_requests)],
    ["Revocations", String(s.revocations)], ["Audit records", String(s.audit_records)], ["Version", s.version]];
  return { kids: [h("h1", {}, "Node status"), table(["", "value"], rows.map(([k, v]) => [k, h("code", {}, String(v))]), "Node status")],
    topics: ["peers", "requests"] };
}

async function peersPage(): Promise<View> {
  const list: J[] = await api("peers");
  return { kids: [h("h1", {}, "Peers"), table(["Agency", "Jurisdiction", "State", "Latency (ms)", "Score", "PeerId"],
    list.map((p) => [p.agency ?? "-", p.jurisdiction ?? "-", p.state, p.latency_ms == null ? "-" : String(p.latency_ms),
      p.gossip_score == null ? "-" : p.gossip_score.toFixed(2), h("code", {}, p.peer_id)]), "Peers")], topics: ["peers"] };
}

function datasetLink(id: string, title: string) { return link("/console/datasets/" + id, title); }

// The facets a search can be narrowed by: the search parameter and its label.
const facetNames: [string, string][] = [["domain", "Domain"], ["spectrum", "Spectrum"], ["data_type", "Data type"], ["publisher", "Publisher"]];

async function cataloguePage(): Promise<View> {
  const params = new URLSearchParams(location.search);
  const input = h("input", { id: "q", type: "search", value: params.get("q") ?? "" }) as HTMLInputElement;
  const facets = h("div", { class: "facets", role: "group", "aria-label": "Narrow by" });
  const results = h("div", { class: "results" });
  const failed = (err: Error) => results.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
  const run = async () => {
    const r = await api("search?" + params.toString());
    facets.replaceChildren(...facetNames.map(([name, label]) => {
      const counts = (r.facets?.[name] ?? {}) as Record<string, number>;
      const chosen = params.getAll(name);
      const values = [...new Set([...Object.keys(counts), ...chosen])].sort();
      if (!values.length) return null;
      return h("fieldset", {}, h("legend", {}, label), ...values.map((v) =>
        h("button", { type: "button", class: "facet", "aria-pressed": String(chosen.includes(v)), onclick: () => toggle(name, v) },
          `${v} (${counts[v] ?? 0})`)));
    }).filter((x): x is HTMLElement => x !== null));
    results.replaceChildren(h("p", { role: "status" }, `${r.total} dataset(s) found`),
      table(["Title", "Publisher", "Spectrum", "Version", "Modified"],
        (r.hits ?? []).map((x: J) => [datasetLink(x.dataset, x.title), x.publisher ?? "-", x.level ?? "-", String(x.version), x.modified ?? "-"]),
        "Search results"));
  };
  // The search lives in the address, so a narrowed list can be bookmarked or shared.
  const update = () => {
    const qs = params.toString();
    history.replaceState({}, "", "/console/catalogue" + (qs ? "?" + qs : ""));
    run().catch(failed);
  };
  const toggle = (name: string, value: string) => {
    const had = params.getAll(name);
    params.delete(name);
    for (const v of had) if (v !== value) params.append(name, v);
    if (!had.includes(value)) params.append(name, value);
    update();
  };
  const form = h("form", { class: "filters", role: "search", onsubmit: (e: Event) => {
    e.preventDefault();
    params.delete("q");
    if (input.value.trim()) params.set("q", input.value.trim());
    update();
  } }, h("div", {}, h("label", { for: "q" }, "Search"), input), h("button", { type: "submit" }, "Search"));
  return { kids: [h("h1", {}, "Catalogue"), form, h("div", { class: "catalogue" }, facets, results)],
    mounted: run, topics: ["catalogue"], refresh: run };
}

async function datasetPage(id: string): Promise<View> {
  const d = await api("datasets/" + encodeURIComponent(id));
  const e = d.entry, rec = d.record;
  const dict: J[] = rec.iso?.dictionary ?? [];
  return { kids: [h("h1", {}, e.title),
    table(["", "value"], [["Dataset", h("code", {}, e.dataset)], ["Publisher", e.publisher], ["Spectrum", e.spectrum], ["Domain", e.domain],
      ["Data type", e.data_type], ["Version", String(e.version)], ["Media type", e.media_type], ["Bytes", String(e.bytes)], ["Modified", e.modified],
      ["Description", rec.description ?? ""]], "Entry"),
    h("h2", {}, "Data dictionary"), table(["Field", "Type", "Description"], dict.map((f) => [f.name ?? "-", f.type ?? f.datatype ?? "-", f.description ?? ""]), "Data dictionary"),
    h("h2", {}, "Versions"), table(["Version", "Modified"], (d.versions?.versions ?? []).map((v: J) => [String(v.version), v.modified ?? "-"]), "Versions"),
    h("h2", {}, "Quality"), h("pre", {}, JSON.stringify(d.quality ?? {}, null, 1)),
    h("h2", {}, "Grants"), table(["Direction", "Audience", "State", "Expires"], d.grants.map((g: J) => [g.direction, h("code", {}, g.audience), g.state, String(g.expires ?? "-")]), "Grants")] };
}

const colours: Record<string, string> = { energy: "#b35900", water: "#005a9c", transport: "#6a1b9a", waste: "#2e7d32", ict: "#ad1457" };

// A feature's own name for its tooltip, when it has one.
function featureName(f: J): string {
  const p = f?.properties ?? {};
  const n = f?.id ?? p.name ?? p.NAME ?? p.Name;
  return typeof n === "string" || typeof n === "number" ? String(n) : "";
}

async function mapPage(): Promise<View> {
  const m = await api("map");
  const dom = h("select", { id: "f-domain" }, ...["", "energy", "water", "transport", "waste", "ict"].map((d) => h("option", { value: d }, d || "any"))) as HTMLSelectElement;
  const spec = h("select", { id: "f-spectrum" }, ...["", "open", "shared-public", "shared-group", "shared-named", "closed"].map((d) => h("option", { value: d }, d || "any"))) as HTMLSelectElement;
  const date = h("input", { id: "f-time", type: "date" }) as HTMLInputElement;
  const box = h("div", { id: "map", role: "region", "aria-label": "Map of dataset coverage; the list below names every dataset drawn" });
  const list = h("ul", { class: "shown", "aria-label": "Datasets on the map" });
  const mounted = () => {
    const map = L.map(box, { attributionControl: false, zoomSnap: 0.25 });
    const layer = L.featureGroup().addTo(map);
    // Without animation: the map is where it will stay as soon as the call returns.
    const fit = (b: L.LatLngBounds) => { if (b.isValid()) map.fitBounds(b, { padding: [8, 8], animate: false }); else map.setView([20, 0], 2, { animate: false }); };
    const draw = () => {
      layer.clearLayers();
      list.replaceChildren();
      for (const d of m.datasets as J[]) {
        if (dom.value && d.domain !== dom.value) continue;
        if (spec.value && d.spectrum !== spec.value) continue;
        if (date.value && d.temporal) {
          if (d.temporal.start && d.temporal.start.slice(0, 10) > date.value) continue;
          if (d.temporal.end && d.temporal.end.slice(0, 10) < date.value) continue;
        }
        const colour = colours[d.domain] ?? "#333";
        const open = () => go("/console/datasets/" + d.dataset);
        // Each dataset's paths carry its id as a class, so they can be found in the page.
        const own = L.featureGroup().addTo(layer);
        let shape: J = d.shape;
        if (shape && shape.type === "Topology") {
          const objs = Object.values(shape.objects) as J[];
          shape = { type: "FeatureCollection", features: objs.flatMap((o) => { const f: J = feature(shape, o); return f.features ?? [f]; }) };
        }
        if (shape) {
          L.geoJSON(shape, {
            className: `ds-${d.dataset}`,
            // Lines (routes, pipes, cables) stand out over the areas drawn around them.
            style: (f: J) => /LineString/.test(f?.geometry?.type ?? "")
              ? { color: colour, weight: 3, opacity: 0.9 }
              : { color: colour, weight: 1, fillColor: colour, fillOpacity: 0.12 },
            onEachFeature: (f, l) => { const n = featureName(f); l.bindTooltip(n ? `${d.title}: ${n}` : d.title, { sticky: true }); },
          } as J).on("click", open).addTo(own);
        }
        if (d.bbox) {
          const [w, s, e, n] = d.bbox;
          L.rectangle([[s, w], [n, e]], { className: `ds-${d.dataset}`, color: colour, weight: 2, fill: false, dashArray: "4" })
            .on("click", open).bindTooltip(`${d.title} (coverage)`, { sticky: true }).addTo(own);
        }
        list.append(h("li", {}, datasetLink(d.dataset, d.title), ` (${d.domain}, ${d.spectrum}${d.place ? ", " + d.place : ""}) `,
          h("button", { type: "button", class: "secondary", "aria-label": `Show ${d.title} on the map`, onclick: () => fit(own.getBounds()) }, "Show")));
      }
      if (!list.children.length) list.append(h("li", {}, "No dataset with coverage matches these filters."));
      fit(layer.getBounds());
    };
    for (const el of [dom, spec, date]) el.addEventListener("change", draw);
    draw();
  };
  return { kids: [h("h1", {}, "Map"), h("div", { class: "filters" },
    h("div", {}, h("label", { for: "f-domain" }, "Domain"), dom), h("div", {}, h("label", { for: "f-spectrum" }, "Spectrum"), spec),
    h("div", {}, h("label", { for: "f-time" }, "Covers date"), date)), box, h("h2", {}, "Datasets shown"), list], mounted };
}

// The last decision's message on the request queue, kept across live refreshes of the page.
let decided: { text: string; ok: boolean } | null = null;

async function requestsPage(): Promise<View> {
  const r = await api("requests");
  const msg = h("p", { role: "status", class: decided ? (decided.ok ? "ok" : "error") : "" }, decided?.text ?? "");
  const act = (x: J, what: "approve" | "deny") => async () => {
    try {
      let body = {};
      if (what === "deny") {
        const reason = prompt("Reason for the denial");
        if (reason === null) return;
        body = { reason };
      }
      await api(`requests/${x.request}/${what}`, body);
      decided = { text: `Request ${x.request} (${x.title ?? x.dataset}) ${what === "approve" ? "approved" : "denied"}.`, ok: true };
    } catch (e: any) { decided = { text: e.message, ok: false }; }
    await render(false);
  };
  const canDecide = role === "approver" || role === "admin";
  const who = (x: J) => h("span", {}, x.requester_agency ? `${x.requester_agency}${x.requester_jurisdiction ? ` (${x.requester_jurisdiction})` : ""} ` : "",
    h("code", { class: "did" }, x.requester));
  return { kids: [h("h1", {}, "Request queue"), msg,
    h("h2", {}, "For this node's data"),
    table(["Dataset", "Requester", "Purpose", "Received", "State", ""], r.incoming.map((x: J) => [datasetLink(x.dataset, x.title ?? x.dataset), who(x), x.purpose,
      when(x.received * 1000), x.state + (x.reason ? `: ${x.reason}` : ""),
      x.state === "pending" && canDecide ? h("span", { class: "actions" },
        h("button", { onclick: act(x, "approve"), "aria-label": `Approve request ${x.request}` }, "Approve"), " ",
        h("button", { class: "secondary", onclick: act(x, "deny"), "aria-label": `Deny request ${x.request}` }, "Deny")) : ""]), "Incoming requests"),
    h("h2", {}, "This node's own requests"),
    table(["Dataset", "Purpose", "State"], r.outgoing.map((x: J) => [h("code", {}, x.dataset), x.purpose, x.state]), "Outgoing requests")],
    topics: ["requests"] };
}

async function transfersPage(): Promise<View> {
  const t = await api("transfers");
  return { kids: [h("h1", {}, "Transfers"),
    h("h2", {}, "Running or interrupted"),
    table(["Dataset", "Progress", "State"], t.transfers.map((x: J) => {
      const done = x.bytes ?? 0, total = x.total ?? 0;
      return [x.title ?? h("code", {}, x.dataset ?? "-"),
        h("span", {}, h("progress", { max: total || 1, value: done, "aria-label": `bytes verified of ${x.title ?? x.dataset}` }), ` ${done} of ${total} bytes`),
        x.state ?? "-"];
    }), "Running transfers"),
    h("h2", {}, "Finished (receipts)"),
    table(["Dataset", "This node was", "Counterparty", "Bytes", "Purpose", "Ended", "Receipt"], t.receipts.map((x: J) => [
      x.title ? datasetLink(x.dataset, x.title) : h("code", {}, x.dataset ?? "-"), x.role ?? "-",
      h("span", {}, x.counterparty_agency ? `${x.counterparty_agency} ` : "", h("code", { class: "did" }, (x.role === "provider" ? x.receiver : x.provider) ?? "-")),
      String(x.bytes ?? "-"), x.purpose ?? "-",
      when(x.end), `${x.status ?? "-"} ${(x.id ?? "").slice(0, 12)}`]), "Receipts")],
    topics: ["transfers"] };
}

async function auditPage(): Promise<View> {
  const a = await api("audit?limit=200");
  const verdict = h("p", { role: "status" });
  const verify = async () => {
    try {
      const v = await api("audit/verify");
      verdict.textContent = v.ok ? `verified: ${v.records} records, chain intact` : `NOT verified: ${v.error}`;
      verdict.className = v.ok ? "ok" : "error";
    } catch (e: any) { verdict.textContent = e.message; verdict.className = "error"; }
  };
  return { kids: [h("h1", {}, "Audit log"), h("p", {}, `${a.total} records; newest first`), h("button", { onclick: verify }, "Verify the log"), verdict,
    table(["#", "When", "Kind", "Detail"], a.records.map((r: J) => [String(r.seq), when(r.at * 1000), r.kind, r.detail ?? r.reason ?? r.purpose ?? ""]), "Audit records")] };
}

async function revocationsPage(): Promise<View> {
  const list: J[] = await api("revocations");
  return { kids: [h("h1", {}, "Revocations"), table(["Revoked delegation", "By", "Reason"], list.map((r) => [h("code", {}, r.revoked), h("code", {}, r.by ?? "-"), r.reason ?? ""]), "Revocations")],
    topics: ["revocations"] };
}

async function viewOf(p: string): Promise<View> {
  if (p === "/console/login") return loginPage();
  if (!role) started(await api("session"));
  if (p === "/console" || p === "/console/status") return statusPage();
  if (p === "/console/peers") return peersPage();
  if (p === "/console/catalogue") return cataloguePage();
  if (p === "/console/map") return mapPage();
  if (p.startsWith("/console/datasets/")) return datasetPage(decodeURIComponent(p.slice("/console/datasets/".length)));
  if (p === "/console/requests") return requestsPage();
  if (p === "/console/transfers") return transfersPage();
  if (p === "/console/audit") return auditPage();
  if (p === "/console/revocations") return revocationsPage();
  return { kids: [h("h1", {}, "Not found")] };
}

render(true);
