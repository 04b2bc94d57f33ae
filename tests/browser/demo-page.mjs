// Drives the demo EHR page in Debian's headless Chromium through playwright-core.
// Input: DEMO_BASE_URL, ARTIFACTS_DIR (screenshots). Output: one JSON object on stdout with what
// the page showed; tests/browser/test_demo_page.py checks it against the service's database.
import { chromium } from "playwright-core";

const base = process.env.DEMO_BASE_URL;
const artifacts = process.env.ARTIFACTS_DIR;
const CHART_PATIENT = process.env.CHART_PATIENT || "mmf-new-start-no-test";
const PREGNANT_PATIENT = process.env.PREGNANT_PATIENT || "mmf-pregnant-status";
const WAIT = { timeout: 20000 };

// Pick the patient (its patient-view call answers first), draft one order, sign, await the card.
async function signAndWaitForCard(page, patientId, orderable, indicator) {
  await page.selectOption("#patient-select", patientId);
  await page.waitForSelector("#cards-status:has-text('patient-view')", WAIT);
  await page.selectOption("#order-select", orderable);
  await page.click("#add-order");
  await page.click("#sign-orders");
  const card = page.locator(`article.cds-card[data-indicator=${indicator}]`);
  await card.waitFor(WAIT);
  return card;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
  ],
});
const result = { consoleErrors: [], pageErrors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("console", (message) => {
    if (message.type() === "error") result.consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => result.pageErrors.push(String(error)));
  page.on("response", (answer) => {
    if (answer.status() >= 400) result.consoleErrors.push(`${answer.status()} ${answer.url()}`);
  });

  // 1. The page loads and lists the demo patients.
  const response = await page.goto(`${base}/demo`);
  result.csp = response.headers()["content-security-policy"] || null;
  await page.waitForSelector("body[data-ready=true]", WAIT);
  result.title = await page.title();
  result.patientOptions = await page.locator("#patient-select option").count();

  // 2. Picking a patient draws the ALT/AST/IgG chart with ULN lines.
  await page.selectOption("#patient-select", CHART_PATIENT);
  await page.waitForSelector("#lab-chart-svg g[data-analyte=alt] circle.point", WAIT);
  result.chart = {
    altPoints: await page.locator("#lab-chart-svg g[data-analyte=alt] circle.point").count(),
    altAboveUln: await page.locator("#lab-chart-svg g[data-analyte=alt] circle.point.above").count(),
    ulnLines: await page.locator("#lab-chart-svg line.uln").count(),
    altUln: await page.locator("#lab-chart-svg g[data-analyte=alt] line.uln").getAttribute("data-uln"),
    tableRows: await page.locator("#lab-table tbody tr").count(),
    trendLink: await page.locator("#lab-trend-link").getAttribute("href"),
  };
  await page.locator("#lab-figure").screenshot({ path: `${artifacts}/demo-chart.png` });

  // 3. An MMF order for a pregnant patient: the critical card.
  const critical = await signAndWaitForCard(page, PREGNANT_PATIENT, "mmf", "critical");
  result.critical = {
    uuid: await critical.getAttribute("data-card-uuid"),
    summary: await critical.locator("h3").innerText(),
    badge: await critical.locator(".badge").innerText(),
    boldInDetail: await critical.locator(".card-detail strong").count(),
    listItemsInDetail: await critical.locator(".card-detail li").count(),
    overrideReasons: await critical.locator("select option").count() - 1,
  };
  await page.screenshot({ path: `${artifacts}/demo-critical-card.png`, fullPage: true });
  // Every control (including those on the rendered card) has an accessible name.
  result.unlabelledControls = await page.evaluate(() =>
    [...document.querySelectorAll("select, textarea, input, button")]
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.textContent.trim())
      .map((e) => e.id || e.outerHTML.slice(0, 80)),
  );
  result.chartAccessibleName = await page.locator("#lab-chart-svg, #lab-chart-empty").first().evaluate(
    (e) => e.getAttribute("aria-labelledby") || e.textContent,
  );

  // 4. Accepting its suggestion removes the draft and sends feedback.
  const accept = critical.locator("button[data-suggestion-uuid]").first();
  result.critical.suggestionUuid = await accept.getAttribute("data-suggestion-uuid");
  await accept.click();
  await critical.locator(".feedback-status:has-text('Feedback recorded')").waitFor(WAIT);
  result.critical.orderLog = await page.locator("#order-log li").allInnerTexts();
  result.critical.draftsLeft = await page.locator("#draft-list li[data-order]").count();

  // 5. A warning card overridden with a reason and a comment.
  const warning = await signAndWaitForCard(page, CHART_PATIENT, "mmf", "warning");
  await warning.locator("button.override-button").click(); // no reason chosen yet: refused
  result.overrideWithoutReason = await warning.locator(".feedback-status").innerText();
  const select = warning.locator("select");
  await select.selectOption({ index: 1 });
  result.warning = {
    uuid: await warning.getAttribute("data-card-uuid"),
    reason: (await select.locator("option:checked").innerText()).trim(),
  };
  await warning.locator("textarea").fill("Patient uses two forms of contraception; test booked");
  await warning.locator("button.override-button").click();
  await warning.locator(".feedback-status:has-text('Feedback recorded')").waitFor(WAIT);
  await page.screenshot({ path: `${artifacts}/demo-warning-overridden.png`, fullPage: true });

  // 6. The lab-trend view at its stable URL.
  await page.goto(`${base}${result.chart.trendLink}`);
  await page.waitForSelector("body[data-ready=true]", WAIT);
  result.labView = {
    bodyClass: await page.getAttribute("body", "class"),
    chart: await page.locator("#lab-chart-svg").count(),
    ordersVisible: await page.locator("#orders-panel").isVisible(),
  };
  await page.screenshot({ path: `${artifacts}/demo-lab-trend.png`, fullPage: true });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
