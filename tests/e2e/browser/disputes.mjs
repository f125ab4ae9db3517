// A dispute as people make and decide it, in Debian's Chromium driven by playwright-core.
// Run by tests/e2e/test_portal_disputes.py, which starts the real stack between the phases and
// checks what this script saw (one JSON object on stdout); this script only acts and records.
//
// PHASE=dispute: USER (an administrator of an institution an outcome pays) opens the expected
//   line during the review window and disputes it; OTHER_USER (an institution the outcome does
//   not pay) can neither open nor dispute it.
// PHASE=request: the operator asks REQUESTED_FROM for a correcting event; USER reads the request.
// PHASE=decide: the operator opens the queue and the dispute, and upholds it naming CORRECTING
//   (reporter|event id of the source's correcting event).
// PHASE=adjusted: USER reads the statement after the window: the payment, the adjustment.
// Environment: BASE_URL, USER, PASSWORD, OTHER_USER, OTHER_PASSWORD, OPERATOR_PASSWORD,
// CORRECTING, SHOTS (a folder for screenshots), AXE (axe.min.js).
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const env = process.env;
const seen = {};
const texts = async (page, selector) => (await page.locator(selector).allInnerTexts()).map((t) => t.trim());

async function axe(page) {
  await page.addScriptTag({ content: readFileSync(env.AXE, "utf8") });
  return page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
}

async function logIn(browser, user, password, landing) {
  const page = await (await browser.newContext({ viewport: { width: 1200, height: 900 }, bypassCSP: true })).newPage();
  await page.goto(`${env.BASE_URL}/portal/`);
  await page.getByLabel("Brugernavn").fill(user);
  await page.getByLabel("Adgangskode").fill(password);
  await page.getByLabel("Adgangskode").press("Enter");
  await page.waitForURL(`**${landing}`);
  return page;
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  if (env.PHASE === "dispute") {
    const page = await logIn(browser, env.USER, env.PASSWORD, "/portal/statement");
    const reference = await page.locator("table.provisional tbody tr").first().getAttribute("data-reference");
    await page.locator("table.provisional tbody tr a").first().click();
    await page.locator("#line-detail form.dispute").waitFor();
    await page.getByLabel("Datoerne for et ophold er forkerte").check();
    await page.getByLabel("Bemærkning: hvad er forkert, og hvad er rigtigt").fill(
      "Eleven begyndte hos os 1. august 2020, ikke 10. august. Vi sender rettelsen.");
    seen.form = { reference, axe: await axe(page) };
    await page.locator("#line-detail form.dispute").screenshot({ path: `${env.SHOTS}/dispute.png` });
    await page.getByRole("button", { name: "Send indsigelsen" }).click();
    await page.waitForURL(`**/portal/provisional/${reference}?disputed=1`);
    seen.sent = { url: page.url(), state: await page.locator("[data-dispute-state]").first().getAttribute("data-dispute-state"),
                  words: (await texts(page, "[data-dispute-words]"))[0] || "",
                  form: await page.locator("form.dispute").count() };

    // Another institution: the line is not there for it, and its dispute is refused.
    const other = await logIn(browser, env.OTHER_USER, env.OTHER_PASSWORD, "/portal/statement");
    const opened = await other.goto(`${env.BASE_URL}/portal/provisional/${reference}`);
    seen.other = { open: opened.status(), text: await other.locator("main").innerText() };
    await other.goto(`${env.BASE_URL}/portal/statement`);
    seen.other.dispute = await other.evaluate(async (ref) => {
      const token = document.querySelector("form.logout input[name=csrf_token]").value;
      const answer = await fetch(`/portal/provisional/${ref}/dispute`, { method: "POST", redirect: "manual",
        body: new URLSearchParams({ csrf_token: token, reason: "other", note: "not ours" }) });
      return answer.status;
    }, reference);
  } else if (env.PHASE === "request") {
    const page = await logIn(browser, "operator", env.OPERATOR_PASSWORD, "/portal/operator");
    await page.goto(`${env.BASE_URL}/portal/operator/disputes`);
    await page.locator("table.disputes-queue tbody tr a").first().click();
    await page.waitForURL("**/portal/operator/disputes/*");
    await page.getByLabel("Enig: bed kilden om en rettende hændelse (pengene holdes fortsat tilbage)").check();
    await page.getByLabel("Kilden, der bedes om rettelsen (når der bedes om en)").selectOption(env.REQUESTED_FROM);
    await page.getByLabel("Bemærkning til institutionen (begrundelsen for et afslag, eller hvad kilden bedes rette)").fill(
      "Send indmeldelsen 1. august 2020, og tilbagekald a-8.");
    await page.getByRole("button", { name: "Send afgørelsen" }).click();
    await page.waitForURL("**/portal/operator/disputes");
    seen.queue = { rows: await page.locator("table.disputes-queue tbody tr").evaluateAll((rows) => rows.map((row) =>
      row.dataset.disputeState)) };
    const source = await logIn(browser, env.USER, env.PASSWORD, "/portal/statement");
    seen.source = { requests: await source.locator("table.corrections tbody tr").evaluateAll((rows) => rows.map((row) =>
      [...row.querySelectorAll("td")].map((cell) => cell.innerText.trim()))), axe: await axe(source) };
    await source.locator("table.corrections").screenshot({ path: `${env.SHOTS}/correction-requested.png` });
  } else if (env.PHASE === "decide") {
    const page = await logIn(browser, "operator", env.OPERATOR_PASSWORD, "/portal/operator");
    seen.overview = { open: await page.locator("[data-open-disputes]").getAttribute("data-open-disputes") };
    await page.getByRole("link", { name: "Åbn køen af indsigelser" }).click();
    await page.waitForURL("**/portal/operator/disputes");
    seen.queue = { rows: await page.locator("table.disputes-queue tbody tr").evaluateAll((rows) => rows.map((row) => ({
      dispute: row.dataset.dispute, state: row.dataset.disputeState,
      cells: [...row.querySelectorAll("td")].map((cell) => cell.innerText.trim()) }))), axe: await axe(page) };
    await page.screenshot({ path: `${env.SHOTS}/operator-disputes.png`, fullPage: true });
    await page.locator("table.disputes-queue tbody tr a").first().click();
    await page.waitForURL("**/portal/operator/disputes/*");
    seen.dispute = {
      facts: await page.locator("table.facts tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.event)),
      payees: await page.locator("table.payees tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.payee)),
      note: (await texts(page, "dl.dispute-facts dd.note-text"))[0] || "",
      axe: await axe(page),
    };
    await page.getByLabel("Medhold: den rettende hændelse er modtaget (pengene flyttes med den forskel, den giver)").check();
    await page.getByLabel("Den rettende hændelse (ved medhold)").selectOption(env.CORRECTING);
    await page.getByLabel("Bemærkning til institutionen (begrundelsen for et afslag, eller hvad kilden bedes rette)").fill(
      "Rettet af gymnasiet selv: indmeldelsen 1. august 2020.");
    await page.screenshot({ path: `${env.SHOTS}/operator-dispute.png`, fullPage: true });
    await page.getByRole("button", { name: "Send afgørelsen" }).click();
    await page.waitForURL("**/portal/operator/disputes");
    seen.after = { rows: await page.locator("table.disputes-queue tbody tr").count() };
  } else {
    const page = await logIn(browser, env.USER, env.PASSWORD, "/portal/statement");
    seen.statement = {
      rows: await page.locator("table.lines tbody tr").evaluateAll((rows) => rows.map((row) => ({
        payment: row.dataset.payment, state: row.dataset.state,
        cells: [...row.querySelectorAll("td")].map((cell) => cell.innerText.trim()) }))),
      total: (await texts(page, "table.totals tfoot td"))[0],
      axe: await axe(page),
    };
    await page.locator("table.lines tbody tr a").first().click();
    await page.locator("#line-detail article").waitFor();
    seen.line = { state: await page.locator("#line-detail [data-dispute-state]").first().getAttribute("data-dispute-state"),
                  words: (await texts(page, "#line-detail [data-dispute-words]"))[0] || "",
                  note: (await texts(page, "#line-detail [data-decision-note]"))[0] || "" };
    await page.screenshot({ path: `${env.SHOTS}/adjusted.png`, fullPage: true });
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen));
