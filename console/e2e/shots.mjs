// Logs in to a running node's console in headless Chromium (Debian's, never a downloaded one),
// with every non-loopback request aborted and counted, and saves a screenshot of each page.
// Usage: node e2e/shots.mjs ADMIN_URL USER PASSWORD OUTDIR
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, user, password, out] = process.argv.slice(2);
mkdirSync(out, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "cix-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  viewport: { width: 1280, height: 800 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage();
const outside = [];
await page.route("**/*", (route) => {
  const u = new URL(route.request().url());
  if (u.hostname === "127.0.0.1" || u.hostname === "localhost") return route.continue();
  outside.push(u.href);
  return route.abort();
});
await page.goto(base + "/console/status");
if (!page.url().endsWith("/console/login")) throw new Error("logged out, a page was served: " + page.url());
await page.getByLabel("User name").fill(user);
await page.getByLabel("Password", { exact: true }).fill(password);
await page.getByRole("button", { name: "Log in" }).click();
await page.getByRole("heading", { name: "Node status" }).waitFor();
for (const [path, heading] of [["status", "Node status"], ["peers", "Peers"], ["catalogue", "Catalogue"], ["map", "Map"],
  ["requests", "Request queue"], ["transfers", "Transfers"], ["audit", "Audit log"], ["revocations", "Revocations"]]) {
  await page.getByRole("link", { name: heading === "Node status" ? "Status" : heading === "Request queue" ? "Requests" : heading, exact: true }).click();
  await page.getByRole("heading", { name: heading, exact: true }).waitFor();
  if (path === "map") await page.locator(".leaflet-interactive").first().waitFor({ state: "attached" }); // drawn; at world zoom a city may be under one pixel
  if (path === "audit") { await page.getByRole("button", { name: "Verify the log" }).click(); await page.getByText("chain intact").waitFor(); }
  await page.screenshot({ path: join(out, `${path}.png`) });
}
await browser.close();
if (outside.length) throw new Error("outside requests attempted: " + outside.join(", "));
console.log("screenshots in " + out + "; no outside request attempted");
