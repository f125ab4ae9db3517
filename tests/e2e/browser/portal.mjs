// The institutions' portal as people use it, in Debian's Chromium driven by playwright-core.
// Run by tests/e2e/test_portal_browser.py, which starts the real stack and checks what this
// script saw (printed as one JSON object on stdout); this script only acts and records.
//
// Environment: BASE_URL, USER and PASSWORD (an institution's user), LOCKED_USER and its
// PASSWORD_OF_LOCKED (another user, locked out by wrong passwords here), OTHER_LINE (a
// payment id of another institution), SHOTS (a folder for screenshots), AXE (axe.min.js).
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const env = process.env;
const seen = {};
const texts = async (page, selector) => (await page.locator(selector).allInnerTexts()).map((t) => t.trim());

// axe-core in the page: WCAG 2.0/2.1 A and AA rules; the violations' rule ids and where.
async function axe(page) {
  await page.addScriptTag({ content: readFileSync(env.AXE, "utf8") });
  return page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
}

// PHASE=provisional: during an outcome's review window, log in, read the expected lines
// and open the first; any other PHASE: the whole path below.
async function logIn(page) {
  await page.goto(`${env.BASE_URL}/portal/`);
  await page.getByLabel("Brugernavn").fill(env.USER);
  await page.getByLabel("Adgangskode").fill(env.PASSWORD);
  await page.getByLabel("Adgangskode").press("Enter");
  await page.waitForURL("**/portal/statement");
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  // bypassCSP only so that axe-core can be put into the page; the CSP itself is checked by its header in the unit tests.
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, bypassCSP: true,
                                             acceptDownloads: true });
  const page = await context.newPage();
  if (env.PHASE === "provisional") {
    await logIn(page);
    seen.provisional = {
      statementRows: await page.locator("table.lines tbody tr").count() === 0 ? [] : ["lines"],
      rows: await page.locator("table.provisional tbody tr").evaluateAll((rows) => rows.map((row) => ({
        reference: row.dataset.reference, daysLeft: row.dataset.daysLeft,
        cells: [...row.querySelectorAll("td")].map((cell) => cell.innerText.trim()) }))),
      axe: await axe(page),
    };
    await page.locator("table.provisional tbody tr a").first().click();
    await page.locator("#line-detail article").waitFor();
    seen.provisional.detail = {
      url: page.url(), daysLeft: await page.locator("#line-detail [data-days-left]").getAttribute("data-days-left"),
      stays: await page.locator("table.stays tbody tr").evaluateAll((rows) => rows.map((row) =>
        [...row.querySelectorAll("td")].map((cell) => cell.innerText.trim()))),
    };
    await page.screenshot({ path: `${env.SHOTS}/provisional.png`, fullPage: true });
    await browser.close();
    process.stdout.write(JSON.stringify(seen));
    process.exit(0);
  }
  const consoleErrors = [];
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });

  // Log in, by keyboard as much as by mouse: the labels name the fields.
  await page.goto(`${env.BASE_URL}/portal/`);
  seen.login = { url: page.url(), lang: await page.getAttribute("html", "lang"), heading: (await texts(page, "h1"))[0],
                 axe: await axe(page) };
  await page.getByLabel("Brugernavn").fill(env.USER);
  await page.getByLabel("Adgangskode").fill(env.PASSWORD);
  await page.getByLabel("Adgangskode").press("Enter");
  await page.waitForURL("**/portal/statement");

  // The statement, in Danish.
  seen.statement = {
    lang: await page.getAttribute("html", "lang"), heading: (await texts(page, "h1"))[0],
    rows: await page.locator("table.lines tbody tr").evaluateAll((rows) => rows.map((row) => ({
      payment: row.dataset.payment, state: row.dataset.state,
      cells: [...row.querySelectorAll("td")].map((cell) => cell.innerText.trim()) }))),
    total: (await texts(page, "table.totals tfoot td"))[0],
    axe: await axe(page),
  };
  await page.screenshot({ path: `${env.SHOTS}/statement.png`, fullPage: true });

  // The statement as a PDF, downloaded as a user does: the link on the page.
  const [pdf] = await Promise.all([page.waitForEvent("download"), page.getByText("Hent som PDF").click()]);
  seen.pdf = { name: pdf.suggestedFilename(), path: `${env.HOME}/statement.pdf` };
  await pdf.saveAs(seen.pdf.path);

  // Open the first line in place (htmx), then the address of the line itself.
  const first = seen.statement.rows[0].payment;
  await page.locator(`tr[data-payment="${first}"] a`).click();
  await page.locator("#line-detail article").waitFor();
  seen.detail = {
    url: page.url(), heading: (await texts(page, "#line-detail h2"))[0],
    own: (await texts(page, 'tr[data-part="own"] td')), others: (await texts(page, 'tr[data-part="others"] td')),
    days: await page.locator("[data-days]").getAttribute("data-days"),
    stays: await page.locator("table.stays tbody tr").evaluateAll((rows) => rows.map((row) =>
      [...row.querySelectorAll("td")].map((cell) => cell.innerText.trim()))),
    text: await page.locator("#line-detail").innerText(),
    axe: await axe(page),
  };
  await page.screenshot({ path: `${env.SHOTS}/line.png`, fullPage: true });

  // English, and the same line under its own address.
  await page.getByRole("link", { name: "English" }).click();
  await page.waitForLoadState();
  seen.english = { url: page.url(), lang: await page.getAttribute("html", "lang"), heading: (await texts(page, "h2"))[0],
                   text: await page.locator("main").innerText() };
  await page.goto(`${env.BASE_URL}/portal/statement`);
  seen.english.statementHeading = (await texts(page, "h1"))[0];
  seen.english.rows = await page.locator("table.lines tbody tr").evaluateAll((rows) => rows.map((row) =>
    [...row.querySelectorAll("td")].map((cell) => cell.innerText.trim())));

  // What the browser complained about while the user read (CSP violations, script errors,
  // failed loads); the refusals below are meant to fail.
  seen.consoleErrors = [...consoleErrors];

  // Another institution's line: not found, like a line that does not exist.
  const other = await page.goto(`${env.BASE_URL}/portal/lines/${env.OTHER_LINE}`);
  seen.otherLine = { status: other.status(), text: await page.locator("main").innerText() };

  // A POST without the CSRF token (as another site's form would send it) is refused, and
  // the session is still there afterwards.
  await page.goto(`${env.BASE_URL}/portal/statement`);
  seen.csrf = await page.evaluate(async () => {
    const withoutToken = await fetch("/portal/logout", { method: "POST", body: new URLSearchParams({}) });
    const forged = await fetch("/portal/logout", { method: "POST", body: new URLSearchParams({ csrf_token: "forged" }) });
    const after = await fetch("/portal/statement", { redirect: "manual" });
    return { withoutToken: withoutToken.status, forged: forged.status, statementAfter: after.status };
  });

  // Log out with the button: the session is gone.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL("**/portal/login");
  await page.goto(`${env.BASE_URL}/portal/statement`);
  seen.afterLogout = { url: page.url() };

  // The operator: the overview of every contract, and no institution's statement.
  const operator = await (await browser.newContext({ bypassCSP: true })).newPage();
  await operator.goto(`${env.BASE_URL}/portal/login`);
  await operator.getByLabel("Brugernavn").fill("operator");
  await operator.getByLabel("Adgangskode").fill(env.OPERATOR_PASSWORD);
  await operator.getByRole("button", { name: "Log ind" }).click();
  await operator.waitForURL("**/portal/operator");
  seen.operator = {
    heading: (await texts(operator, "h1"))[0],
    contracts: await operator.locator("table.overview tbody tr").evaluateAll((rows) => rows.map((row) => ({
      contract: row.dataset.contract, cells: [...row.querySelectorAll("td")].map((cell) => cell.innerText.trim()) }))),
    axe: await axe(operator),
  };
  await operator.goto(`${env.BASE_URL}/portal/statement`);
  seen.operator.statementUrl = operator.url();
  await operator.goto(`${env.BASE_URL}/portal/operator`);
  await operator.screenshot({ path: `${env.SHOTS}/operator.png`, fullPage: true });

  // Wrong passwords for another user until the name is locked; then the right one is refused too.
  const stranger = await (await browser.newContext()).newPage();
  seen.lockout = [];
  for (let attempt = 1; attempt <= 6; attempt++) {
    const password = attempt <= 5 ? `wrong-${attempt}` : env.PASSWORD_OF_LOCKED;
    await stranger.goto(`${env.BASE_URL}/portal/login`);
    await stranger.getByLabel("Brugernavn").fill(env.LOCKED_USER);
    await stranger.getByLabel("Adgangskode").fill(password);
    const [answer] = await Promise.all([
      stranger.waitForResponse((r) => r.url().endsWith("/portal/login") && r.request().method() === "POST"),
      stranger.getByRole("button", { name: "Log ind" }).click(),
    ]);
    await stranger.waitForLoadState();
    seen.lockout.push({ attempt, status: answer.status(), url: stranger.url(),
                        problem: (await texts(stranger, "[role=alert]"))[0] || "" });
  }
  await stranger.screenshot({ path: `${env.SHOTS}/locked.png` });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen));
