// Demo EHR page: plain JavaScript, no dependencies. Every node is built with the DOM API and
// textContent (never innerHTML), so card text from the service cannot inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";
const ANALYTES = [
  { key: "alt", label: "ALT" },
  { key: "ast", label: "AST" },
  { key: "igg", label: "IgG" },
];
const INDICATOR_LABEL = { info: "Info", warning: "Warning", critical: "Critical" };

const state = {
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

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
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

// ------------------------------------------------------------------ markdown (safe subset)

const INLINE = /(\*\*[^*]+\*\*|\*[^*\s][^*]*\*|_[^_\s][^_]*_|`[^`]+`|\[[^\]]+\]\([^)\s]+\))/;

// Cards escape values from FHIR data (a backslash before Markdown punctuation; &lt; &gt; &amp;):
// show the characters they stand for. Text nodes only, so nothing here can become markup.
function unescapeMarkdown(text) {
  return text
    .replace(/\\([!-/:-@[-`{-~])/g, "$1")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

function inline(text) {
  const fragment = document.createDocumentFragment();
  for (const part of text.split(INLINE)) {
    if (!part) continue;
    if (part.startsWith("**") && part.endsWith("**") && part.length > 4) {
      fragment.append(el("strong", {}, unescapeMarkdown(part.slice(2, -2))));
    } else if (/^[*_].+[*_]$/.test(part) && part.length > 2) {
      fragment.append(el("em", {}, unescapeMarkdown(part.slice(1, -1))));
    } else if (part.startsWith("`") && part.endsWith("`")) {
      fragment.append(el("code", {}, part.slice(1, -1)));
    } else if (part.startsWith("[")) {
      const match = part.match(/^\[([^\]]+)\]\(([^)\s]+)\)$/);
      if (match && /^https?:\/\//i.test(match[2])) {
        fragment.append(el("a", { href: match[2], target: "_blank", rel: "noopener noreferrer" }, match[1]));
      } else {
        fragment.append(unescapeMarkdown(part));
      }
    } else {
      fragment.append(unescapeMarkdown(part));
    }
  }
  return fragment;
}

export function renderMarkdown(source) {
  const root = el("div", { className: "card-detail" });
  let paragraph = null;
  let list = null;
  for (const raw of String(source || "").split(/\r?\n/)) {
    const line = raw.trimEnd();
    const bullet = line.match(/^\s*[-*+]\s+(.*)$/);
    const heading = line.match(/^#{1,6}\s+(.*)$/);
    if (!line.trim()) {
      paragraph = null;
      list = null;
    } else if (bullet) {
      paragraph = null;
      if (!list) root.append((list = el("ul")));
      list.append(el("li", {}, inline(bullet[1])));
    } else if (heading) {
      paragraph = list = null;
      root.append(el("h4", {}, inline(heading[1])));
    } else {
      list = null;
      if (!paragraph) root.append((paragraph = el("p")));
      else paragraph.append(" ");
      paragraph.append(inline(line.trim()));
    }
  }
  return root;
}

// ------------------------------------------------------------------ lab chart

function dayOf(iso) {
  return iso ? iso.slice(0, 10) : "";
}

function renderChart(patient) {
  const container = $("lab-chart");
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
  if (end - start < 14 * 864e5) {
    start -= 7 * 864e5;
    end += 7 * 864e5;
  }
  const width = 860;
  const left = 70;
  const right = 20;
  const panelHeight = 110;
  const laneHeight = 18;
  const timelineHeight = Math.max(1, courses.length) * laneHeight + 30;
  const header = 18;
  const height = 20 + series.length * (header + panelHeight + 20) + timelineHeight + 30;
  const x = (t) => left + ((t - start) / (end - start)) * (width - left - right);
  const root = svg("svg", {
    id: "lab-chart-svg",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": "lab-chart-title lab-chart-desc",
  });
  root.append(svg("title", { id: "lab-chart-title" }, `${patient.name}: ALT, AST and IgG with upper limits of normal, and treatment courses`));
  const description = series
    .map((s) => `${s.label}: ${s.points.length ? s.points.map((p) => `${p.value} ${s.unit} on ${dayOf(p.when)}`).join(", ") : "no results"}`)
    .join("; ");
  root.append(svg("desc", { id: "lab-chart-desc" }, description));

  let top = 20;
  for (const s of series) {
    const group = svg("g", { "data-analyte": s.key, class: "lab-panel" });
    const ulns = s.points.map((p) => p.uln).filter((u) => u !== null);
    const uln = ulns.length ? ulns[ulns.length - 1] : s.default_uln;
    const max = Math.max(uln || 0, ...s.points.map((p) => p.value), 1) * 1.15;
    group.append(svg("text", { x: 4, y: top + 12, class: "panel-label" }, `${s.label} (${s.unit})`));
    top += header;
    const y = (v) => top + panelHeight - (v / max) * panelHeight;
    group.append(svg("line", { x1: left, x2: width - right, y1: top + panelHeight, y2: top + panelHeight, class: "gridline" }));
    group.append(svg("text", { x: left - 6, y: top + panelHeight, "text-anchor": "end", class: "uln-label" }, "0"));
    group.append(svg("text", { x: left - 6, y: y(max / 1.15) + 4, "text-anchor": "end", class: "uln-label" }, String(Math.round(max / 1.15))));
    if (uln) {
      group.append(svg("line", { x1: left, x2: width - right, y1: y(uln), y2: y(uln), class: "uln", "data-uln": uln }));
      group.append(svg("text", { x: width - right, y: y(uln) - 3, "text-anchor": "end", class: "uln-label" }, `ULN ${uln} ${s.unit}`));
    }
    if (s.points.length > 1) {
      const coords = s.points.map((p) => `${x(Date.parse(p.when)).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
      group.append(svg("polyline", { points: coords, class: "series" }));
    }
    for (const p of s.points) {
      const above = p.uln !== null && p.value > p.uln;
      const dot = svg("circle", {
        cx: x(Date.parse(p.when)).toFixed(1),
        cy: y(p.value).toFixed(1),
        r: 4,
        class: above ? "point above" : "point",
        "data-value": p.value,
      });
      const multiple = p.uln ? ` = ${(p.value / p.uln).toFixed(1)} x ULN (${p.uln_source})` : "";
      dot.append(svg("title", {}, `${s.label} ${p.value} ${s.unit} on ${dayOf(p.when)}${multiple}; reported ${p.reported}`));
      group.append(dot);
    }
    if (!s.points.length) {
      group.append(svg("text", { x: left + 10, y: top + panelHeight / 2, class: "uln-label" }, `No ${s.label} results`));
    }
    root.append(group);
    top += panelHeight + 20;
  }

  const timeline = svg("g", { class: "timeline", "data-courses": courses.length });
  timeline.append(svg("text", { x: 4, y: top + 12, class: "panel-label" }, "Treatment"));
  courses.forEach((c, i) => {
    const from = x(Date.parse(c.start));
    const to = x(c.end ? Date.parse(c.end) : now > end ? end : now);
    const lane = top + 4 + i * laneHeight;
    const bar = svg("rect", { x: from, y: lane, width: Math.max(4, to - from), height: laneHeight - 5, class: c.end ? "course" : "course open" });
    bar.append(svg("title", {}, `${c.label}: ${dayOf(c.start)} to ${c.end ? dayOf(c.end) : "ongoing"} (${c.status})`));
    timeline.append(bar);
    timeline.append(svg("text", { x: from + 4, y: lane + 10, class: "course-label" }, c.label));
  });
  if (!courses.length) timeline.append(svg("text", { x: left + 10, y: top + 14, class: "uln-label" }, "No dated treatment courses"));
  root.append(timeline);
  top += timelineHeight;

  const axis = svg("g", { class: "axis" });
  const ticks = 6;
  for (let i = 0; i <= ticks; i++) {
    const t = start + ((end - start) * i) / ticks;
    axis.append(svg("line", { x1: x(t), x2: x(t), y1: 20, y2: top, class: "gridline" }));
    const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
    axis.append(svg("text", { x: x(t), y: top + 14, "text-anchor": anchor }, new Date(t).toISOString().slice(0, 10)));
  }
  root.prepend(axis);
  container.append(root);
  $("lab-caption").textContent = `${patient.name}: ${count} result(s) of ALT, AST and IgG; dashed red lines are the upper limits of normal; bars are treatment courses. Hover a point for its value.`;
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

async function start() {
  const labView = location.pathname.match(/^\/demo\/patients\/([^/]+)\/labs\/?$/);
  const [patients, orderables] = await Promise.all([api("/demo/api/patients"), api("/demo/api/orderables")]);
  $("auth-warning").hidden = !patients.auth;
  state.orderables = orderables.orderables;
  const picker = $("patient-select");
  for (const p of patients.patients) {
    picker.append(el("option", { value: p.id }, `${p.name} (${p.gender}, ${p.age === null ? "?" : p.age} y) - ${p.scenario}`));
  }
  const orderSelect = $("order-select");
  for (const o of state.orderables) orderSelect.append(el("option", { value: o.key }, o.text));
  picker.addEventListener("change", () => selectPatient(picker.value));
  $("add-order").addEventListener("click", () => {
    state.drafts.push(orderSelect.value);
    renderDrafts();
  });
  $("sign-orders").addEventListener("click", () => callHook("order-sign"));
  renderDrafts();
  if (labView) {
    document.body.classList.add("lab-view");
    $("page-title").textContent = "Lab trend";
    picker.value = decodeURIComponent(labView[1]);
    await selectPatient(picker.value);
  }
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  document.body.dataset.ready = "error";
  $("cards-status").textContent = `The demo could not start: ${error.message}`;
});
