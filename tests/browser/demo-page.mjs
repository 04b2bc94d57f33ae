// Drives the demo EHR page in Debian's headless Chromium through playwright-core.
// Input: DEMO_BASE_URL, ARTIFACTS_DIR (screenshots). Output: one JSON object on stdout with what
// the page showed; tests/browser/test_demo_page.py checks it against the service's database.
import { chromium } from "playwright-core";

const base = process.env.DEMO_BASE_URL;
const artifacts = process.env.ARTIFACTS_DIR;
const CHART_PATIENT = process.env.CHART_PATIENT || "mmf-new-start-no-test";
const LANES_PATIENT = "aih-infliximab-rescue"; // four treatment courses, one an IV infusion
const MARKDOWN_PATIENT = "aih-relapse-on-maintenance"; // a card with a numbered list
const DOSE_PATIENT = "tpmt-normal-activity"; // azathioprine + allopurinol drafted here
const PREGNANT_PATIENT = process.env.PREGNANT_PATIENT || "mmf-pregnant-status";
const WAIT = { timeout: 20000 };

// Pick a patient from the full list (its patient-view call answers first).
async function choosePatient(page, patientId) {
  if (!(await page.isChecked("#show-all"))) await page.check("#show-all");
  await page.selectOption("#patient-select", patientId);
  await page.waitForSelector("#cards-status:has-text('patient-view')", WAIT);
}

// Pick the patient, draft the orders, sign, await the card.
async function signAndWaitForCard(page, patientId, orderables, indicator) {
  await choosePatient(page, patientId);
  for (const orderable of [].concat(orderables)) {
    await page.selectOption("#order-select", orderable);
    await page.click("#add-order");
  }
  await page.click("#sign-orders");
  await page.waitForSelector("#cards-status:has-text('order-sign')", WAIT);
  const card = page.locator(`article.cds-card[data-indicator=${indicator}]`).first();
  await card.waitFor(WAIT);
  return card;
}

// What Chart.js drew in one panel: y ticks, value labels, ULN, and lane labels with their
// placement (read from the chart instances; the pixels are in the screenshots).
async function chartFacts(page) {
  return page.evaluate(() => {
    const facts = {};
    for (const panel of document.querySelectorAll("#lab-chart .chart-panel")) {
      const canvas = panel.querySelector("canvas");
      const chart = canvas && window.Chart.getChart(canvas);
      const key = panel.dataset.analyte || "lanes";
      if (!chart) {
        facts[key] = { drawn: false };
        continue;
      }
      facts[key] = {
        drawn: true,
        points: chart.data.datasets[0].data.length,
        yTicks: chart.scales.y.ticks.map((t) => t.label).filter((l) => l !== ""),
        xTicks: chart.scales.x.ticks.map((t) => t.label),
        valueLabels: chart.$valueLabels || [],
        uln: chart.data.datasets[1] ? chart.data.datasets[1].label : null,
        aboveUln: (chart.data.datasets[0].pointBackgroundColor || []).filter((c) => c === "#a4001d").length,
        laneLabels: chart.$laneLabels || [],
      };
    }
    return facts;
  });
}

// The page scrolls sideways when its content is wider than the viewport.
const horizontalOverflow = (page) =>
  page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);

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
  result.picker = {
    featured: await page.locator("#patient-select optgroup[label='Featured stories'] option").allInnerTexts(),
    allCount: Number(await page.locator("#all-count").innerText()),
  };
  await page.check("#show-all");
  result.picker.allShown = await page.locator("#patient-select option[data-all]").count();
  await page.fill("#patient-filter", "tnf persistent");
  result.picker.filtered = await page.locator("#patient-select option[data-all]").allInnerTexts();
  await page.fill("#patient-filter", "");
  await page.uncheck("#show-all");

  // 2. Picking a patient draws the ALT/AST/IgG chart (Chart.js) with ULN lines and values.
  await choosePatient(page, CHART_PATIENT);
  await page.waitForSelector("#lab-chart .chart-panel[data-analyte=alt] canvas", WAIT);
  result.chart = {
    facts: await chartFacts(page),
    tableRows: await page.locator("#lab-table tbody tr").count(),
    trendLink: await page.locator("#lab-trend-link").getAttribute("href"),
  };
  await page.locator("#lab-figure").screenshot({ path: `${artifacts}/demo-chart.png` });

  // 2b. Treatment lanes at 1024 px: every course named in full, inside the plot.
  await page.setViewportSize({ width: 1024, height: 900 });
  await choosePatient(page, LANES_PATIENT);
  await page.waitForSelector("#lab-chart .chart-panel.lanes canvas", WAIT);
  result.lanes = await chartFacts(page);
  result.lanesCourses = await page.evaluate(() => document.querySelector("#lab-chart .lanes").dataset.courses);
  await page.locator("#lab-figure").screenshot({ path: `${artifacts}/demo-chart-lanes-1024.png` });

  // 2c. A card with a numbered list, rendered by markdown-it + DOMPurify, at 1024 px.
  await choosePatient(page, MARKDOWN_PATIENT);
  const listCard = page.locator("article.cds-card").first();
  await listCard.waitFor(WAIT);
  result.markdown = {
    orderedItems: await listCard.locator(".card-detail ol > li").count(),
    literalNumbering: await listCard.locator(".card-detail").evaluate((e) => /(^|\n)1\. \*\*/.test(e.textContent)),
    literalAsterisks: await listCard.locator(".card-detail").evaluate((e) => e.textContent.includes("**")),
    height: Math.round((await listCard.boundingBox()).height),
    overflow: await horizontalOverflow(page),
  };
  await page.screenshot({ path: `${artifacts}/demo-page-1024.png`, fullPage: true });

  // 2d. Structured doses: azathioprine 50 mg once daily with allopurinol -> a computed daily dose.
  const doseCard = await signAndWaitForCard(page, DOSE_PATIENT, ["azathioprine", "allopurinol"], "info");
  result.dose = { text: await page.locator("#cards").innerText() };
  void doseCard;
  await page.setViewportSize({ width: 1400, height: 1000 });

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
  result.chartAccessibleName = await page.locator("#lab-chart canvas, #lab-chart-empty").first().evaluate(
    (e) => e.getAttribute("aria-label") || e.textContent,
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
  // A long reason without spaces must wrap inside the card at 1024 px, not widen the page.
  await page.setViewportSize({ width: 1024, height: 900 });
  await warning.locator("textarea").fill("x".repeat(400));
  result.longComment = {
    overflow: await horizontalOverflow(page),
    cardOverflow: await warning.evaluate((e) => e.scrollWidth - e.clientWidth),
  };
  await warning.locator("textarea").fill("Patient uses two forms of contraception; test booked");
  await warning.locator("button.override-button").click();
  await warning.locator(".feedback-status:has-text('Feedback recorded')").waitFor(WAIT);
  await page.screenshot({ path: `${artifacts}/demo-warning-overridden-1024.png`, fullPage: true });
  await page.setViewportSize({ width: 1400, height: 1000 });

  // 6. The lab-trend view at its stable URL.
  await page.goto(`${base}${result.chart.trendLink}`);
  await page.waitForSelector("body[data-ready=true]", WAIT);
  result.labView = {
    bodyClass: await page.getAttribute("body", "class"),
    chart: await page.locator("#lab-chart .chart-panel canvas").count(),
    ordersVisible: await page.locator("#orders-panel").isVisible(),
  };
  await page.screenshot({ path: `${artifacts}/demo-lab-trend.png`, fullPage: true });

  // 7. An unknown patient's lab-trend link: a page for people, not JSON.
  // (its own page: the 404 is expected, so it stays out of the error listeners above)
  const other = await browser.newPage({ viewport: { width: 1024, height: 700 } });
  const missing = await other.goto(`${base}/demo/patients/no-such-patient/labs`);
  result.unknownPatient = {
    status: missing.status(),
    contentType: missing.headers()["content-type"],
    csp: missing.headers()["content-security-policy"] || null,
    heading: await other.locator("h2").innerText(),
    backLink: await other.locator("a[href='/demo']").count(),
  };
  await other.screenshot({ path: `${artifacts}/demo-unknown-patient.png` });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
