// Drives a node's web console in headless Chromium (Debian's /usr/bin/chromium; never a
// downloaded browser) through the flows of issue 11, with every non-loopback request aborted
// and counted: the run fails if the page attempted any. Started by console/e2e/run.sh, which
// sets up the two nodes and passes them in CIX_E2E_* variables.
import { chromium } from "playwright-core";
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const v = process.env["CIX_E2E_" + name];
  if (!v) throw new Error(`CIX_E2E_${name} is not set; run console/e2e/run.sh`);
  return v;
};
const base = env("ADMIN"), cix = env("CIX"), requester = env("REQUESTER"), work = env("WORK");
const tube = env("TUBE"), tubeFile = env("TUBE_FILE"), boroughs = env("BOROUGHS"), shots = env("SHOTS");
const started = Date.now();
mkdirSync(shots, { recursive: true });

let steps = 0;
function step(what) { steps++; console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`); }
function check(ok, what) { if (!ok) throw new Error("check failed: " + what); }

// Runs the requester node's `cix` with a time limit; resolves to its stdout, rejects with
// its stderr.
function requesterCix(args, timeout = 60_000) {
  return new Promise((resolve, reject) => {
    execFile(cix, ["--home", requester, ...args], { timeout }, (err, stdout, stderr) =>
      err ? reject(new Error(`cix ${args.join(" ")}: ${err.message}\n${stderr}`)) : resolve(stdout));
  });
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-domain-reliability"],
});
const outside = [];
async function context() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  // The network cut-off: only this machine's loopback is reachable.
  await ctx.route("**/*", (route) => {
    const u = new URL(route.request().url());
    if (u.hostname === "127.0.0.1" || u.hostname === "localhost" || u.hostname === "[::1]") return route.continue();
    outside.push(u.href);
    return route.abort();
  });
  ctx.setDefaultTimeout(20_000);
  return ctx;
}
const shot = (page, name) => page.screenshot({ path: join(shots, name + ".png"), fullPage: true });
// A POST from inside the page (same origin, the session's cookie), with the headers given.
const postFromPage = (page, path, headers) => page.evaluate(async ([path, headers]) => {
  const r = await fetch(path, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json", ...headers }, body: "{}" });
  return { status: r.status, body: await r.json().catch(() => ({})) };
}, [path, headers]);
const csrfOf = (page) => page.evaluate(async () => (await (await fetch("/console/api/session")).json()).csrf);

async function logIn(page, user, password) {
  await page.goto(base + "/console/login");
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Node status" }).waitFor();
}
const open = async (page, linkName, heading) => {
  await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: linkName, exact: true }).click();
  await page.getByRole("heading", { name: heading, exact: true }).waitFor();
};

try {
  // Logged out: pages send the browser to the login page, API calls are refused, and a login
  // posted from another origin is refused even with the right password.
  step("logged out, pages and API calls are refused");
  const anon = await (await context()).newPage();
  for (const p of ["/console/status", "/console/requests", "/console/map", `/console/datasets/${tube}`]) {
    const r = await anon.request.get(base + p, { maxRedirects: 0 });
    check(r.status() === 303 && r.headers().location === "/console/login", `logged out, ${p} answered ${r.status()}`);
    await anon.goto(base + p);
    check(new URL(anon.url()).pathname === "/console/login", `logged out, ${p} led to ${anon.url()}`);
  }
  await anon.getByRole("heading", { name: "Log in" }).waitFor();
  for (const p of ["status", "catalogue", "search?q=london", "map", "requests", "transfers", "audit", "audit/verify", "events", `datasets/${tube}`]) {
    const r = await anon.request.get(`${base}/console/api/${p}`, { maxRedirects: 0 });
    check(r.status() === 401, `logged out, GET /console/api/${p} answered ${r.status()}`);
  }
  const anonPost = await postFromPage(anon, "/console/api/revoke", {});
  check(anonPost.status === 401, `logged out, a POST answered ${anonPost.status}`);
  const crossLogin = await anon.request.post(`${base}/console/api/login`, {
    headers: { Origin: "http://attacker.invalid" }, data: { name: "ada", password: "ada approves 123" }, maxRedirects: 0 });
  check(crossLogin.status() === 403, `a login from another origin answered ${crossLogin.status()}`);
  await shot(anon, "login");

  step("log in as the approver");
  const ctx = await context();
  const page = await ctx.newPage();
  await logIn(page, "ada", "ada approves 123");
  await page.getByText("ada (approver)").waitFor();
  await shot(page, "status");

  step("peers: Thames Water connected");
  await open(page, "Peers", "Peers");
  const peer = page.getByRole("row", { name: /Thames Water/ });
  await peer.getByRole("cell", { name: "connected", exact: true }).waitFor();
  await peer.getByRole("cell", { name: "GB", exact: true }).waitFor();
  await shot(page, "peers");

  step("search the catalogue, then narrow by a facet");
  await open(page, "Catalogue", "Catalogue");
  const results = page.getByRole("table", { name: "Search results" });
  await page.getByText(/^3 dataset\(s\) found$/).waitFor();
  await page.getByRole("searchbox", { name: "Search" }).fill("london");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.getByText(/^2 dataset\(s\) found$/).waitFor();
  await results.getByRole("link", { name: "London boroughs" }).waitFor();
  await results.getByRole("link", { name: "London Underground lines" }).waitFor();
  check(await results.getByRole("link", { name: "Distribution network model" }).count() === 0, "the search for london listed the water model");
  check(new URL(page.url()).searchParams.get("q") === "london", "the search is not in the address: " + page.url());
  await page.getByRole("group", { name: "Spectrum" }).getByRole("button", { name: "shared-named (1)" }).click();
  await page.getByText(/^1 dataset\(s\) found$/).waitFor();
  check(await results.getByRole("link", { name: "London boroughs" }).count() === 0, "the spectrum facet did not narrow the list");
  await results.getByRole("link", { name: "London Underground lines" }).waitFor();
  check(await page.getByRole("button", { name: "shared-named (1)" }).getAttribute("aria-pressed") === "true", "the chosen facet is not marked pressed");
  await shot(page, "catalogue");

  step("open a dataset from the map by clicking its shape");
  await open(page, "Map", "Map");
  const shapes = page.locator(`path.ds-${boroughs}`);
  await shapes.first().waitFor({ state: "attached" });
  check(await shapes.count() >= 33, `the boroughs are drawn as ${await shapes.count()} shapes, not 33`);
  await page.locator(`path.ds-${tube}`).first().waitFor({ state: "attached" });
  await shot(page, "map");
  // The filters redraw the map: only the shared-named dataset, then everything again.
  const shown = page.getByRole("list", { name: "Datasets on the map" }).getByRole("listitem");
  await page.getByLabel("Spectrum").selectOption("shared-named");
  check(await shapes.count() === 0 && await shown.count() === 1, "the spectrum filter left the boroughs on the map");
  await page.getByLabel("Spectrum").selectOption("");
  await shapes.first().waitFor({ state: "attached" });
  check(await shown.count() === 2, "clearing the filter did not bring both datasets back");
  // A point of the window where a borough, not a tube line or a box, is the top element.
  const at = await page.evaluate((cls) => {
    for (const el of document.querySelectorAll("path." + cls)) {
      const b = el.getBoundingClientRect();
      for (let i = 1; i < 12; i++) for (let j = 1; j < 12; j++) {
        const x = b.left + (b.width * i) / 12, y = b.top + (b.height * j) / 12;
        if (x > 0 && y > 0 && x < innerWidth && y < innerHeight && document.elementFromPoint(x, y) === el) return { x, y };
      }
    }
    return null;
  }, `ds-${boroughs}`);
  check(at, "no borough can be clicked on the map");
  await page.mouse.move(at.x, at.y);
  await page.locator(".leaflet-tooltip", { hasText: "London boroughs: " }).waitFor();
  check(await page.evaluate(([x, y, cls]) => document.elementFromPoint(x, y)?.classList.contains(cls), [at.x, at.y, `ds-${boroughs}`]),
    "the borough moved from under the pointer");
  await page.mouse.click(at.x, at.y);
  await page.waitForURL(`**/console/datasets/${boroughs}`);
  await page.getByRole("heading", { name: "London boroughs", level: 1 }).waitFor();
  await shot(page, "dataset");

  step("the requester asks for the shared-named dataset; the queue shows it live");
  await open(page, "Requests", "Request queue");
  await page.evaluate(() => { window.cixNotReloaded = true; });
  const incoming = page.getByRole("table", { name: "Incoming requests" });
  check(await incoming.getByRole("row").count() === 1, "the queue is not empty before the request");
  const asked = await requesterCix(["--json", "request", tube, "--purpose", "works near Underground tunnels"]);
  check(JSON.parse(asked.trim().split("\n").pop()).status === "pending", "the request is not pending: " + asked);
  const row = incoming.getByRole("row", { name: /London Underground lines/ });
  await row.getByRole("cell", { name: "pending", exact: true }).waitFor();
  await row.getByText("Thames Water (GB)").waitFor();
  await row.getByText("works near Underground tunnels").waitFor();
  check(await page.evaluate(() => window.cixNotReloaded === true), "the page was reloaded, not updated live");
  const approve = row.getByRole("button", { name: /^Approve request / });
  const requestId = (await approve.getAttribute("aria-label")).replace("Approve request ", "");
  await shot(page, "requests");

  step("a viewer sees the request but cannot approve it");
  const viewer = await (await context()).newPage();
  await logIn(viewer, "vic", "vic only views 123");
  await open(viewer, "Requests", "Request queue");
  const seen = viewer.getByRole("table", { name: "Incoming requests" }).getByRole("row", { name: /London Underground lines/ });
  await seen.getByRole("cell", { name: "pending", exact: true }).waitFor();
  check(await viewer.getByRole("button", { name: /^(Approve|Deny) request/ }).count() === 0, "a viewer is offered approve or deny");
  const byViewer = await postFromPage(viewer, `/console/api/requests/${requestId}/approve`, { "X-CSRF-Token": await csrfOf(viewer) });
  check(byViewer.status === 403 && /approver/.test(byViewer.body.error), `a viewer's approval answered ${byViewer.status} ${JSON.stringify(byViewer.body)}`);
  await viewer.getByRole("button", { name: "Log out" }).click();
  await viewer.getByRole("heading", { name: "Log in" }).waitFor();

  step("forged posts are refused: no CSRF token, a wrong one, a form from another origin");
  const approvePath = `/console/api/requests/${requestId}/approve`;
  const noToken = await postFromPage(page, approvePath, {});
  check(noToken.status === 403 && /CSRF/.test(noToken.body.error), `no CSRF token answered ${noToken.status}`);
  const wrongToken = await postFromPage(page, approvePath, { "X-CSRF-Token": "0".repeat(64) });
  check(wrongToken.status === 403 && /CSRF/.test(wrongToken.body.error), `a wrong CSRF token answered ${wrongToken.status}`);
  // Another origin on this machine (same site, other port: the browser sends the session
  // cookie along) posts an ordinary HTML form at the approve endpoint.
  const attacker = createServer((_, res) => {
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end(`<!doctype html><title>Prize</title><form method="post" enctype="text/plain" action="${base}${approvePath}">` +
      `<input type="hidden" name='{"x":"' value='"}'><button>Claim your prize</button></form>`);
  });
  await new Promise((ok) => attacker.listen(0, "127.0.0.1", ok));
  const lure = await ctx.newPage();
  await lure.goto(`http://127.0.0.1:${attacker.address().port}/`);
  const [forged] = await Promise.all([
    lure.waitForResponse((r) => r.url() === base + approvePath),
    lure.getByRole("button", { name: "Claim your prize" }).click(),
  ]);
  check(forged.status() === 403 && /Origin/.test((await forged.json()).error), `a form posted from another origin answered ${forged.status()}`);
  check((await forged.request().allHeaders()).cookie?.includes("cix_console="), "the forged form was sent without the session cookie, so it proves less");
  await lure.close();
  attacker.close();
  await row.getByRole("cell", { name: "pending", exact: true }).waitFor();

  step("the approver approves in the browser");
  await approve.click();
  await page.getByRole("status").filter({ hasText: `Request ${requestId} (London Underground lines) approved.` }).waitFor();
  await row.getByRole("cell", { name: "approved", exact: true }).waitFor();

  step("the requester's fetch completes, and the transfers page shows it live");
  await open(page, "Transfers", "Transfers");
  const receipts = page.getByRole("table", { name: "Receipts" });
  check(await receipts.getByRole("row", { name: /London Underground lines/ }).count() === 0, "a receipt before the fetch");
  const out = join(work, "tube-copy.json");
  const fetched = await requesterCix(["--json", "fetch", tube, "-o", out]);
  check(JSON.parse(fetched.trim().split("\n").pop()).event === "done", "the fetch did not end with done: " + fetched);
  check(readFileSync(out).equals(readFileSync(tubeFile)), "the fetched copy differs from the published file");
  const receipt = receipts.getByRole("row", { name: /London Underground lines/ });
  await receipt.getByRole("cell", { name: "provider", exact: true }).waitFor();
  await receipt.getByRole("cell", { name: "works near Underground tunnels" }).waitFor();
  check(await page.evaluate(() => window.cixNotReloaded === true), "the page was reloaded, not updated live");
  await shot(page, "transfers");

  step("the audit log verifies, with the approval under the approver's name");
  await open(page, "Audit log", "Audit log");
  await page.getByRole("button", { name: "Verify the log" }).click();
  await page.getByRole("status").filter({ hasText: /^verified: \d+ records, chain intact$/ }).waitFor();
  await page.getByRole("cell", { name: `request ${requestId} approved, in the console by ada (approver)` }).waitFor();
  await shot(page, "audit");

  await open(page, "Revocations", "Revocations");
  await shot(page, "revocations");

  step("after logout, a replayed post and the pages are refused");
  const cookie = (await ctx.cookies(base + "/console/")).find((c) => c.name === "cix_console");
  check(cookie, "no session cookie");
  const token = await csrfOf(page);
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "Log in" }).waitFor();
  const replay = await page.request.post(base + `/console/api/requests/${requestId}/deny`, {
    headers: { Cookie: `cix_console=${cookie.value}`, "X-CSRF-Token": token, Origin: base }, data: { reason: "replayed" }, maxRedirects: 0 });
  check(replay.status() === 401, `a post replayed after logout answered ${replay.status()}`);
  await page.goto(base + "/console/audit");
  check(new URL(page.url()).pathname === "/console/login", "after logout a page was served");
} finally {
  await browser.close();
}
if (outside.length) throw new Error("outside requests attempted: " + outside.join(", "));
console.log(`console e2e: ${steps} steps passed in ${((Date.now() - started) / 1000).toFixed(1)}s; ` +
  `screenshots in ${shots}; no outside request attempted`);
