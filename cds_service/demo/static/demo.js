// Demo EHR page. Vendored libraries (see VENDORED.md), loaded before this module as classic
// scripts: Chart.js (window.Chart) for the lab chart, markdown-it (window.markdownit) and
// DOMPurify (window.DOMPurify) for card detail. Everything else is built with the DOM API and
// textContent, never innerHTML.
const ANALYTES = [
  { key: "alt", label: "ALT" },
  { key: "ast", label: "AST" },
  { key: "igg", label: "IgG" },
];
const INDICATOR_LABEL = { info: "Info", warning: "Warning", critical: "Critical" };

const state = {
  patients: [],
  patient: null,
  orderables: [],
  drafts: [], // orderable keys, in order
  draftIds: new Map(), // draft MedicationRequest id sent in the last request -> index in drafts
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
  });
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const issue = body && body.issue && body.issue[0];
    const why = issue ? issue.diagnostics : response.statusText || "no detail (authentication?)";
    throw new Error(`HTTP ${response.status}: ${why}`);
  }
  return body;
}

// ------------------------------------------------------------------ markdown

// markdown-it (CommonMark: numbered and nested lists, emphasis, links) with raw HTML off, then
// DOMPurify over its output: card text from the service can never inject markup or script.
const markdown = window.markdownit({ html: false, linkify: false, typographer: false });
const SAFE_URL = /^(?:https?:\/\/|\/(?!\/))/i;

export function renderMarkdown(source) {
  const root = el("div", { className: "card-detail" });
  const fragment = window.DOMPurify.sanitize(markdown.render(String(source || "")), {
    RETURN_DOM_FRAGMENT: true,
    ALLOWED_URI_REGEXP: SAFE_URL,
    FORBID_TAGS: ["img", "style", "form", "input"],
  });
  for (const link of fragment.querySelectorAll("a")) {
    if (!SAFE_URL.test(link.getAttribute("href") || "")) link.removeAttribute("href");
    link.setAttribute("target", "_blank");
    link.setAttribute("rel", "noopener noreferrer");
  }
  root.append(fragment);
  return root;
}

// ------------------------------------------------------------------ lab chart (Chart.js)

const INK = "#1b1f24";
const SERIES = "#20364f";
const ABOVE = "#a4001d";
const DAY = 864e5;
const AXIS_WIDTH = 64; // every panel's y axis is this wide, so their time axes line up
const charts = [];

function dayOf(iso) {
  return iso ? iso.slice(0, 10) : "";
}

function dateLabel(ms, span) {
  const options = span > 200 * DAY ? { month: "short", year: "numeric" } : { day: "numeric", month: "short", year: "2-digit" };
  return new Date(ms).toLocaleDateString("en-GB", { ...options, timeZone: "UTC" });
}

// Date ticks on calendar boundaries (days, weeks or the first of a month), as many as fit the
// axis at about 90 px per label, so labels never run into each other.
const DAY_STEPS = [1, 2, 7, 14];
const MONTH_STEPS = [1, 2, 3, 6, 12, 24];

function dateTicks(start, end, fit) {
  const spanDays = (end - start) / DAY;
  const days = DAY_STEPS.find((step) => spanDays / step <= fit);
  const ticks = [];
  if (days) {
    const first = new Date(start);
    first.setUTCHours(0, 0, 0, 0);
    for (let t = first.getTime() + DAY; t <= end; t += days * DAY) if (t >= start) ticks.push(t);
    return ticks;
  }
  const months = MONTH_STEPS.find((step) => spanDays / (30.44 * step) <= fit) || 48;
  const cursor = new Date(start);
  cursor.setUTCHours(0, 0, 0, 0);
  cursor.setUTCDate(1);
  cursor.setUTCMonth(cursor.getUTCMonth() + 1);
  while (cursor.getUTCMonth() % months !== 0 && months <= 12) cursor.setUTCMonth(cursor.getUTCMonth() + 1);
  for (; cursor.getTime() <= end; cursor.setUTCMonth(cursor.getUTCMonth() + months)) ticks.push(cursor.getTime());
  return ticks;
}

function timeAxis(start, end) {
  return {
    type: "linear",
    min: start,
    max: end,
    grid: { color: "#e3e7eb" },
    afterBuildTicks: (scale) => {
      const fit = Math.max(2, Math.floor((scale.right - scale.left || scale.chart.width - AXIS_WIDTH) / 90));
      scale.ticks = dateTicks(start, end, fit).map((value) => ({ value }));
    },
    ticks: { color: INK, autoSkip: false, maxRotation: 0, callback: (value) => dateLabel(value, end - start) },
  };
}

const fixedAxisWidth = (scale) => {
  scale.width = AXIS_WIDTH;
};

// Values written above the points, so nothing needs a hover. Where points crowd, a label that
// would overlap one already written is left out (values above the ULN are written first); the
// table under the chart lists every value.
const valueLabels = {
  id: "valueLabels",
  afterDatasetsDraw(chart) {
    const { ctx } = chart;
    const dataset = chart.data.datasets[0];
    const points = chart.getDatasetMeta(0).data.map((point, index) => ({
      x: point.x,
      y: point.y,
      text: String(dataset.data[index].y),
      colour: dataset.pointBackgroundColor[index],
    }));
    points.sort((a, b) => Number(b.colour === ABOVE) - Number(a.colour === ABOVE));
    const boxes = [];
    const drawn = [];
    ctx.save();
    ctx.font = "600 11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    for (const p of points) {
      const half = ctx.measureText(p.text).width / 2 + 2;
      const box = { left: p.x - half, right: p.x + half, top: p.y - 20, bottom: p.y - 5 };
      if (boxes.some((b) => b.left < box.right && box.left < b.right && b.top < box.bottom && box.top < b.bottom)) continue;
      boxes.push(box);
      ctx.fillStyle = p.colour;
      ctx.fillText(p.text, p.x, p.y - 6);
      drawn.push(p.text);
    }
    ctx.restore();
    chart.$valueLabels = drawn;
  },
};

// Treatment lanes: the course name and dates written above each bar, in full, kept inside the
// plot: right-aligned when the bar starts too far right, on two lines when one is too long.
function wrapToWidth(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return [text];
  const words = text.split(" ");
  for (let cut = words.length - 1; cut > 0; cut--) {
    const first = words.slice(0, cut).join(" ");
    if (ctx.measureText(first).width <= width) return [first, words.slice(cut).join(" ")];
  }
  return [text];
}

const laneLabels = {
  id: "laneLabels",
  afterDatasetsDraw(chart) {
    const { ctx, chartArea } = chart;
    const meta = chart.getDatasetMeta(0);
    const texts = chart.data.datasets[0].laneText;
    const placed = [];
    ctx.save();
    ctx.font = "13px system-ui, sans-serif";
    ctx.fillStyle = INK;
    ctx.textBaseline = "bottom";
    meta.data.forEach((bar, index) => {
      const lines = wrapToWidth(ctx, texts[index], chartArea.right - chartArea.left - 4);
      const from = Math.max(chartArea.left, Math.min(bar.base, bar.x));
      const widest = Math.max(...lines.map((line) => ctx.measureText(line).width));
      const x = Math.max(chartArea.left + 2, Math.min(from + 2, chartArea.right - widest - 2));
      lines.forEach((line, row) => {
        const width = ctx.measureText(line).width;
        const y = bar.y - bar.height / 2 - 2 - (lines.length - 1 - row) * 15;
        ctx.fillText(line, x, y);
        placed.push({ text: line, x, width, left: chartArea.left, right: chartArea.right });
      });
    });
    ctx.restore();
    chart.$laneLabels = placed;
  },
};

function analyteChart(canvas, s, start, end) {
  const ulns = s.points.map((p) => p.uln).filter((u) => u !== null);
  const uln = ulns.length ? ulns[ulns.length - 1] : s.default_uln;
  const top = Math.max(uln || 0, ...s.points.map((p) => p.value), 1);
  const colours = s.points.map((p) => (p.uln !== null && p.value > p.uln ? ABOVE : SERIES));
  const datasets = [
    {
      label: `${s.label} (${s.unit})`,
      data: s.points.map((p) => ({ x: Date.parse(p.when), y: p.value })),
      borderColor: SERIES,
      pointBackgroundColor: colours,
      pointBorderColor: colours,
      pointRadius: 4,
      borderWidth: 1.6,
    },
  ];
  if (uln) {
    datasets.push({
      label: `ULN ${uln} ${s.unit}`,
      data: [{ x: start, y: uln }, { x: end, y: uln }],
      borderColor: ABOVE,
      borderDash: [6, 4],
      borderWidth: 1.2,
      pointRadius: 0,
    });
  }
  return new window.Chart(canvas, {
    type: "line",
    data: { datasets },
    plugins: [valueLabels],
    options: {
      animation: false,
      maintainAspectRatio: false,
      layout: { padding: { top: 4, right: 8 } },
      scales: {
        x: timeAxis(start, end),
        y: {
          beginAtZero: true,
          suggestedMax: top * 1.2,
          grace: "5%",
          afterFit: fixedAxisWidth,
          grid: { color: "#e3e7eb" },
          ticks: { color: INK, maxTicksLimit: 6 },
          title: { display: true, text: s.unit, color: INK },
        },
      },
      plugins: {
        legend: { align: "end", labels: { color: INK, boxWidth: 14 } },
        title: { display: true, text: s.label, align: "start", color: INK, font: { size: 14, weight: "bold" } },
        tooltip: {
          callbacks: {
            label: (item) => {
              if (item.datasetIndex) return item.dataset.label;
              const p = s.points[item.dataIndex];
              const multiple = p.uln ? ` = ${(p.value / p.uln).toFixed(1)} x ULN (${p.uln_source})` : "";
              return `${s.label} ${p.value} ${s.unit} on ${dayOf(p.when)}${multiple}; reported ${p.reported}`;
            },
          },
        },
      },
    },
  });
}

function laneChart(canvas, courses, start, end, now) {
  const stop = (c) => (c.end ? Date.parse(c.end) : Math.min(now, end));
  return new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: courses.map((_, i) => String(i)),
      datasets: [
        {
          label: "Treatment courses",
          data: courses.map((c) => [Date.parse(c.start), Math.max(stop(c), Date.parse(c.start) + DAY)]),
          laneText: courses.map((c) => `${c.label}: ${dayOf(c.start)} to ${c.end ? dayOf(c.end) : "ongoing"} (${c.status})`),
          backgroundColor: courses.map((c) => (c.end ? "#7fa7cf" : "#2f6ea8")),
          barThickness: 12,
        },
      ],
    },
    plugins: [laneLabels],
    options: {
      indexAxis: "y",
      animation: false,
      maintainAspectRatio: false,
      layout: { padding: { right: 8 } },
      scales: {
        x: timeAxis(start, end),
        y: { afterFit: fixedAxisWidth, grid: { display: false }, ticks: { display: false } },
      },
      plugins: {
        legend: { display: false },
        title: { display: true, text: "Treatment", align: "start", color: INK, font: { size: 14, weight: "bold" } },
        tooltip: { callbacks: { label: (item) => item.dataset.laneText[item.dataIndex] } },
      },
    },
  });
}

function renderChart(patient) {
  const container = $("lab-chart");
  while (charts.length) charts.pop().destroy();
  container.replaceChildren();
  const series = ANALYTES.map((a) => ({ ...a, ...patient.labs[a.key] }));
  const courses = patient.courses.filter((c) => c.start);
  const now = Date.now();
  const times = [];
  for (const s of series) for (const p of s.points) times.push(Date.parse(p.when));
  for (const c of courses) times.push(Date.parse(c.start), c.end ? Date.parse(c.end) : now);
  const count = series.reduce((n, s) => n + s.points.length, 0);
  if (!times.length) {
    $("lab-caption").textContent = `${patient.name}: no ALT, AST or IgG results and no dated treatment courses on record.`;
    container.append(el("p", { id: "lab-chart-empty" }, "No lab results or treatment courses to chart."));
    return;
  }
  let [start, end] = [Math.min(...times), Math.max(...times)];
  const pad = Math.max(7 * DAY, (end - start) * 0.03);
  [start, end] = [start - pad, end + pad];
  for (const s of series) {
    const description = s.points.length ? s.points.map((p) => `${p.value} ${s.unit} on ${dayOf(p.when)}`).join(", ") : "no results";
    const canvas = el("canvas", { role: "img", "aria-label": `${s.label}: ${description}` });
    const panel = el("div", { className: "chart-panel", "data-analyte": s.key, "data-points": s.points.length }, canvas);
    container.append(panel);
    if (!s.points.length) {
      panel.classList.add("empty");
      panel.replaceChildren(el("p", { className: "no-results" }, `${s.label}: no results on record.`));
      continue;
    }
    charts.push(analyteChart(canvas, s, start, end));
  }
  const laneText = courses.map((c) => `${c.label} from ${dayOf(c.start)} to ${c.end ? dayOf(c.end) : "ongoing"}`).join("; ");
  const canvas = el("canvas", { role: "img", "aria-label": `Treatment courses: ${laneText || "none"}` });
  const lanes = el("div", { className: "chart-panel lanes", "data-courses": courses.length }, canvas);
  container.append(lanes);
  if (courses.length) {
    lanes.classList.add(`lanes-${Math.min(courses.length, 8)}`);
    charts.push(laneChart(canvas, courses, start, end, now));
  } else {
    lanes.replaceChildren(el("p", { className: "no-results" }, "No dated treatment courses."));
  }
  $("lab-caption").textContent = `${patient.name}: ${count} result(s) of ALT, AST and IgG, each value written at its point (red: above the upper limit of normal, the dashed line); bars are treatment courses.`;
}

function renderLabTable(patient) {
  const body = $("lab-table").querySelector("tbody");
  body.replaceChildren();
  const rows = [];
  for (const a of ANALYTES) for (const p of patient.labs[a.key].points) rows.push({ a, p, unit: patient.labs[a.key].unit });
  rows.sort((r1, r2) => r1.p.when.localeCompare(r2.p.when));
  for (const { a, p, unit } of rows) {
    body.append(el("tr", {}, el("td", {}, dayOf(p.when)), el("td", {}, a.label), el("td", {}, `${p.value} ${unit}`), el("td", {}, p.uln === null ? "-" : `${p.uln} (${p.uln_source})`), el("td", {}, p.reported)));
  }
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: 5 }, "No results")));
}

// ------------------------------------------------------------------ patients and orders

async function selectPatient(id) {
  state.patient = null;
  state.drafts = [];
  renderDrafts();
  $("order-log").replaceChildren();
  $("cards").replaceChildren();
  $("cards-status").textContent = "";
  if (!id) return;
  const patient = await api(`/demo/api/patients/${encodeURIComponent(id)}`);
  state.patient = patient;
  const banner = $("patient-banner");
  banner.replaceChildren(
    el("strong", {}, patient.name),
    ` - ${patient.gender}, ${patient.age === null ? "age unknown" : `${patient.age} y`} (born ${patient.birthDate || "unknown"})`,
    el("br"),
    el("span", {}, patient.description),
  );
  if (patient.conditions.length) {
    banner.append(el("br"), `Problems: ${patient.conditions.map((c) => c.label + (c.active ? "" : " (inactive)")).join("; ")}`);
  }
  renderChart(patient);
  renderLabTable(patient);
  const link = $("lab-trend-link");
  link.href = patient.labTrendUrl;
  link.hidden = false;
  $("add-order").disabled = false;
  if (!document.body.classList.contains("lab-view")) await callHook("patient-view");
}

function renderDrafts() {
  const list = $("draft-list");
  list.replaceChildren();
  state.drafts.forEach((key, index) => {
    const item = state.orderables.find((o) => o.key === key);
    const remove = el("button", { type: "button", "aria-label": `Remove draft ${item.text}` }, "Remove");
    remove.addEventListener("click", () => {
      state.drafts.splice(index, 1);
      renderDrafts();
    });
    list.append(el("li", { "data-order": key }, `${item.text} `, remove));
  });
  if (!state.drafts.length) list.append(el("li", { className: "empty" }, "No draft orders."));
  $("sign-orders").disabled = !state.patient || !state.drafts.length;
}

async function callHook(hook) {
  const status = $("cards-status");
  const cards = $("cards");
  cards.replaceChildren();
  status.classList.remove("error");
  status.textContent = `Calling the ${hook} service...`;
  try {
    const built = await api(`/demo/api/patients/${encodeURIComponent(state.patient.id)}/hook-requests`, {
      method: "POST",
      body: JSON.stringify({ hook, orders: state.drafts }),
    });
    state.draftIds = new Map();
    const drafts = (built.request.context.draftOrders || { entry: [] }).entry;
    drafts.forEach((entry, index) => state.draftIds.set(`MedicationRequest/${entry.resource.id}`, index));
    const answer = await api(`/cds-services/${encodeURIComponent(built.serviceId)}`, {
      method: "POST",
      body: JSON.stringify(built.request),
    });
    status.textContent = `${answer.cards.length} card(s) from ${built.serviceId} (${hook}).`;
    for (const card of answer.cards) cards.append(renderCard(card, built.serviceId));
  } catch (error) {
    status.classList.add("error");
    status.textContent = `The ${hook} call failed: ${error.message}`;
  }
}

// ------------------------------------------------------------------ cards and feedback

async function sendFeedback(serviceId, item) {
  const body = { feedback: [{ outcomeTimestamp: new Date().toISOString(), ...item }] };
  return api(`/cds-services/${encodeURIComponent(serviceId)}/feedback`, { method: "POST", body: JSON.stringify(body) });
}

function applyActions(suggestion) {
  const log = $("order-log");
  const removed = new Set();
  for (const action of suggestion.actions || []) {
    if (action.type === "delete" && state.draftIds.has(action.resourceId)) {
      const index = state.draftIds.get(action.resourceId);
      const item = state.orderables.find((o) => o.key === state.drafts[index]);
      removed.add(index);
      log.append(el("li", { "data-action": "delete" }, `Removed draft: ${item ? item.text : action.resourceId}`));
    } else if (action.type === "create" && action.resource) {
      const r = action.resource;
      const coding = (r.code && r.code.coding && r.code.coding[0]) || {};
      const what = (r.code && r.code.text) || coding.display || r.resourceType;
      log.append(el("li", { "data-action": "create" }, `Added ${r.resourceType}: ${what}`));
    } else {
      log.append(el("li", {}, `${action.type}: ${action.description || ""}`));
    }
  }
  state.drafts = state.drafts.filter((_, i) => !removed.has(i));
  state.draftIds = new Map();
  renderDrafts();
}

function renderCard(card, serviceId) {
  const titleId = `card-${card.uuid}-summary`;
  const article = el("article", {
    className: `cds-card indicator-${card.indicator}`,
    "data-indicator": card.indicator,
    "data-card-uuid": card.uuid,
    "aria-labelledby": titleId,
  });
  const status = el("p", { className: "feedback-status", role: "status" });
  const controls = [];
  const done = (message) => {
    controls.forEach((c) => (c.disabled = true));
    status.classList.remove("error");
    status.textContent = message;
  };
  const failed = (error) => {
    status.classList.add("error");
    status.textContent = `Feedback not recorded: ${error.message}`;
  };
  article.append(
    el("span", { className: "badge" }, INDICATOR_LABEL[card.indicator] || card.indicator),
    el("h3", { id: titleId }, card.summary),
  );
  const source = card.source || {};
  const sourceLine = el("p", { className: "card-source" }, "Source: ");
  sourceLine.append(/^https?:\/\//i.test(source.url || "") ? el("a", { href: source.url, target: "_blank", rel: "noopener noreferrer" }, source.label) : source.label || "");
  article.append(sourceLine, renderMarkdown(card.detail));

  if (card.suggestions && card.suggestions.length) {
    const list = el("ul", { className: "suggestions", "aria-label": "Suggestions" });
    for (const suggestion of card.suggestions) {
      const button = el("button", { type: "button", "data-suggestion-uuid": suggestion.uuid }, `Accept: ${suggestion.label}`);
      controls.push(button);
      button.addEventListener("click", async () => {
        try {
          await sendFeedback(serviceId, { card: card.uuid, outcome: "accepted", acceptedSuggestions: [{ id: suggestion.uuid }] });
          applyActions(suggestion);
          done(`Accepted: ${suggestion.label}. Feedback recorded.`);
        } catch (error) {
          failed(error);
        }
      });
      list.append(el("li", {}, button, suggestion.isRecommended ? el("span", { className: "recommended" }, "Recommended") : null));
    }
    article.append(list);
  }
  if (card.links && card.links.length) {
    const links = el("ul", { className: "links", "aria-label": "Links" });
    for (const link of card.links) {
      if (!/^https?:\/\//i.test(link.url) && !link.url.startsWith("/")) continue;
      links.append(el("li", {}, el("a", { href: link.url, target: "_blank", rel: "noopener noreferrer", "data-link-type": link.type }, link.label)));
    }
    article.append(links);
  }

  const reasons = card.overrideReasons || [];
  const fieldset = el("fieldset", { className: "override" }, el("legend", {}, reasons.length ? "Override" : "Dismiss"));
  const comment = el("textarea", { id: `comment-${card.uuid}`, "aria-label": "Comment (optional)", placeholder: "Comment (optional)" });
  let select = null;
  if (reasons.length) {
    select = el("select", { id: `reason-${card.uuid}`, "aria-label": "Override reason" }, el("option", { value: "" }, "Choose a reason..."));
    reasons.forEach((reason, index) => select.append(el("option", { value: index }, reason.display || reason.code)));
    controls.push(select);
    fieldset.append(el("label", { for: `reason-${card.uuid}` }, "Reason"), select);
  }
  const overrideButton = el("button", { type: "button", className: "override-button" }, reasons.length ? "Override" : "Dismiss");
  controls.push(overrideButton, comment);
  overrideButton.addEventListener("click", async () => {
    const item = { card: card.uuid, outcome: "overridden" };
    if (select) {
      if (select.value === "") {
        status.classList.add("error");
        status.textContent = "Choose an override reason first.";
        select.focus();
        return;
      }
      item.overrideReason = { reason: reasons[Number(select.value)] };
    }
    if (comment.value.trim()) item.overrideReason = { ...(item.overrideReason || {}), userComment: comment.value.trim() };
    try {
      await sendFeedback(serviceId, item);
      done(select ? `Overridden: ${reasons[Number(select.value)].display}. Feedback recorded.` : "Dismissed. Feedback recorded.");
    } catch (error) {
      failed(error);
    }
  });
  fieldset.append(comment, overrideButton);
  article.append(fieldset, status);
  return article;
}

// ------------------------------------------------------------------ start

function patientLabel(p) {
  const who = `${p.name} (${p.gender}, ${p.age === null ? "?" : p.age} y)`;
  return p.story ? `${p.story.title}: ${who}` : `${p.scenario}: ${who}`;
}

// The picker: the featured stories (one per rule family); every test scenario behind
// "Show all", narrowed by the filter (name, scenario or description).
function renderPicker() {
  const picker = $("patient-select");
  const chosen = picker.value;
  const showAll = $("show-all").checked;
  const words = $("patient-filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  $("patient-filter").hidden = !showAll;
  $("patient-filter-label").hidden = !showAll;
  picker.replaceChildren(el("option", { value: "" }, "Choose a patient..."));
  const featured = el("optgroup", { label: "Featured stories" });
  for (const p of state.patients.filter((q) => q.story)) featured.append(el("option", { value: p.id }, patientLabel(p)));
  picker.append(featured);
  if (showAll) {
    const matches = state.patients.filter((p) => {
      const text = `${p.name} ${p.scenario} ${p.description || ""}`.toLowerCase();
      return words.every((w) => text.includes(w));
    });
    const all = el("optgroup", { label: `All test scenarios (${matches.length} of ${state.patients.length})` });
    for (const p of matches) all.append(el("option", { value: p.id, "data-all": true }, patientLabel(p)));
    picker.append(all);
  }
  if ([...picker.options].some((o) => o.value === chosen)) picker.value = chosen;
}

async function start() {
  const labView = location.pathname.match(/^\/demo\/patients\/([^/]+)\/labs\/?$/);
  const [patients, orderables] = await Promise.all([api("/demo/api/patients"), api("/demo/api/orderables")]);
  $("auth-warning").hidden = !patients.auth;
  state.orderables = orderables.orderables;
  state.patients = patients.patients;
  $("all-count").textContent = String(state.patients.length);
  const picker = $("patient-select");
  renderPicker();
  $("show-all").addEventListener("change", renderPicker);
  $("patient-filter").addEventListener("input", renderPicker);
  const orderSelect = $("order-select");
  for (const o of state.orderables) orderSelect.append(el("option", { value: o.key }, o.text));
  picker.addEventListener("change", async () => {
    const chosen = state.patients.find((p) => p.id === picker.value);
    if (chosen && chosen.story && chosen.story.order) orderSelect.value = chosen.story.order;
    await selectPatient(picker.value);
  });
  $("add-order").addEventListener("click", () => {
    state.drafts.push(orderSelect.value);
    renderDrafts();
  });
  $("sign-orders").addEventListener("click", () => callHook("order-sign"));
  renderDrafts();
  if (labView) {
    document.body.classList.add("lab-view");
    $("page-title").textContent = "Lab trend";
    const id = decodeURIComponent(labView[1]);
    if (!state.patients.some((p) => p.id === id && p.story)) {
      $("show-all").checked = true;
      renderPicker();
    }
    picker.value = id;
    await selectPatient(id);
  }
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  document.body.dataset.ready = "error";
  $("cards-status").textContent = `The demo could not start: ${error.message}`;
});
