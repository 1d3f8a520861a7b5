// The sluice console: plain JavaScript over the daemon's own API, no library,
// nothing fetched from another origin. Every value from the API is put in the
// page as text (never as HTML).
'use strict';

// ---------- helpers ----------
const $ = (sel, el = document) => el.querySelector(sel);

function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, '');
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

function svg(tag, attrs = {}, ...kids) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

const fmt = {
  rate: (v) => (v === null || v === undefined ? '–' : v >= 100 ? Math.round(v).toLocaleString() : v.toFixed(1)),
  pct: (v) => (v === null || v === undefined ? '–' : Math.round(v * 100) + '%'),
  age(iso) {
    if (!iso) return 'never';
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 60 ? Math.round(s) + ' s ago' : s < 3600 ? Math.round(s / 60) + ' min ago' : Math.round(s / 3600) + ' h ago';
  },
  cut: (s, n) => (s && s.length > n ? s.slice(0, n - 1) + '…' : s),
};

const quote = (s) => "'" + String(s).replace(/'/g, "''") + "'";

// The queue fill of a hop as a colour: green, amber, red.
function fillColour(f) {
  if (f === null || f === undefined) return '#c3ccd6';
  if (f < 0.5) return '#2fb36a';
  if (f < 0.85) return '#e0a11b';
  return '#d64545';
}

// ---------- the API, with the token ----------
let token = sessionStorage.getItem('sluice-token') || '';

async function call(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (token) headers.Authorization = 'Bearer ' + token;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  if (r.status === 401) {
    askToken();
    throw new Error('this daemon wants its API token');
  }
  return r;
}

async function json(path, opts) {
  const r = await call(path, opts);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + ' ' + r.statusText);
  return body;
}

const post = (path, body) => json(path, { method: 'POST', body: JSON.stringify(body) });
const enc = encodeURIComponent;

function askToken() {
  const d = $('#token-dialog');
  if (!d.open) d.showModal();
}

$('#token-form').addEventListener('submit', () => {
  token = $('#token-input').value.trim();
  sessionStorage.setItem('sluice-token', token);
  $('#token-input').value = '';
  route();
});

// ---------- routing ----------
let teardown = [];
function onLeave(f) { teardown.push(f); }
function every(ms, f) {
  f();
  const id = setInterval(f, ms);
  onLeave(() => clearInterval(id));
}

function route() {
  for (const f of teardown) f();
  teardown = [];
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const view = $('#view');
  view.replaceChildren();
  const crumbs = $('#crumbs');
  crumbs.replaceChildren(h('a', { href: '#/' }, 'pipelines'));
  if (parts[0] === 'p' && parts[1]) {
    crumbs.append(' / ', h('a', { href: '#/p/' + enc(parts[1]) }, parts[1]));
    pipelineView(view, parts[1], parts[2] || 'graph');
  } else {
    overview(view);
  }
}
window.addEventListener('hashchange', route);
setInterval(() => { $('#clock').textContent = new Date().toLocaleTimeString(); }, 1000);

function fail(el, e) {
  el.replaceChildren(h('p', { class: 'error' }, String(e.message || e)));
}

// ---------- sparklines ----------
function sparkPoints(values, w, hgt) {
  if (values.length < 2) return '';
  const max = Math.max(...values, 1e-9);
  return values
    .map((v, i) => `${((i / (values.length - 1)) * w).toFixed(1)},${(hgt - (v / max) * (hgt - 2) - 1).toFixed(1)}`)
    .join(' ');
}

function spark(values, w = 120, hgt = 24) {
  return svg('svg', { class: 'spark-inline', width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}` },
    svg('polyline', { points: sparkPoints(values, w, hgt) }));
}

// ---------- overview ----------
function overview(view) {
  const body = h('tbody');
  const table = h('table', { id: 'pipelines' },
    h('thead', {}, h('tr', {},
      ['pipeline', 'state', 'epoch', 'last checkpoint', 'rows/s', 'last minutes', 'dead letters', 'errors', ''].map((t) => h('th', {}, t)))),
    body);
  view.append(h('h1', {}, 'Pipelines'), table);
  every(1000, async () => {
    let list;
    try { list = await json('/v1/pipelines'); } catch (e) { return fail(body, e); }
    const histories = await Promise.all(list.pipelines.map((p) =>
      json('/v1/pipelines/' + enc(p.name) + '/history').catch(() => ({ points: [] }))));
    body.replaceChildren(...list.pipelines.map((p, i) => {
      const series = histories[i].points.map((pt) => pt.rows.source || 0);
      const errors = p.config_errors || p.last_error || '';
      const action = p.state === 'paused'
        ? h('button', { class: 'resume', onclick: () => post('/v1/pipelines/' + enc(p.name) + '/resume', {}) }, 'Resume')
        : h('button', { class: 'pause', disabled: p.state !== 'running', onclick: () => post('/v1/pipelines/' + enc(p.name) + '/pause', {}) }, 'Pause');
      return h('tr', { 'data-pipeline': p.name },
        h('td', {}, h('a', { href: '#/p/' + enc(p.name) }, p.name)),
        h('td', {}, h('span', { class: 'badge state ' + p.state }, p.state)),
        h('td', { class: 'num' }, p.epoch),
        h('td', {}, fmt.age(p.last_checkpoint_at)),
        h('td', { class: 'num rate' }, fmt.rate(p.rows_per_second)),
        h('td', {}, spark(series)),
        h('td', { class: 'num' }, p.dead_letters),
        h('td', { class: 'error mono', title: errors }, fmt.cut(errors, 80)),
        h('td', {}, action));
    }));
  });
}

// ---------- one pipeline ----------
const TABS = [['graph', 'Graph'], ['letters', 'Dead letters'], ['sql', 'SQL'], ['tail', 'Live tail'], ['search', 'Search & eval']];

function pipelineView(view, name, tab) {
  const base = '/v1/pipelines/' + enc(name);
  const title = h('h1', {}, name, h('span', { class: 'badge state', id: 'state' }, '…'));
  const tabs = h('nav', { class: 'tabs' }, TABS.map(([id, label]) =>
    h('a', { href: `#/p/${enc(name)}/${id}`, class: id === tab ? 'active' : '', id: 'tab-' + id }, label)));
  const body = h('section', { id: 'tab-body' });
  view.append(title, tabs, body);
  every(2000, async () => {
    try {
      const d = await json(base);
      const b = $('#state');
      if (b) { b.textContent = d.state; b.className = 'badge state ' + d.state; }
    } catch (e) { /* shown by the tab */ }
  });
  ({ graph, letters, sql: sqlTab, tail: tailTab, search: searchTab }[tab] || graph)(body, name, base);
}

// The data path as a graph: each hop coloured by the fill of its queue.
function graph(body, name, base) {
  const box = h('div', { class: 'panel' });
  const legend = h('div', { class: 'legend' },
    h('span', {}, h('i', { class: 'swatch' }), 'queue fill:'),
    ...[['under half', 0.1], ['over half', 0.6], ['nearly full', 0.9]].map(([t, f]) => {
      const i = h('i');
      i.style.background = fillColour(f);
      return h('span', {}, i, t);
    }));
  body.append(box, legend);
  every(1000, async () => {
    let d, hist;
    try {
      [d, hist] = await Promise.all([json(base), json(base + '/history')]);
    } catch (e) { return fail(box, e); }
    box.replaceChildren(drawGraph(d, hist.points));
  });
}

function drawGraph(d, points) {
  const last = points[points.length - 1] || { rows: {}, fill: {}, busy: {} };
  const series = (n) => points.map((p) => p.rows[n] || 0);
  const sinks = d.sinks.filter((s) => !s.name.includes(':'));
  const chain = [{ name: 'source', kind: d.source.kind, letters: null }]
    .concat(d.stages.map((s) => ({ name: s.name, kind: s.kind, letters: s.dead_letters, stage: true })));
  const W = 180, H = 92, GAP = 70, PAD = 20;
  const cols = chain.length + (sinks.length ? 1 : 0);
  const rows = Math.max(1, sinks.length);
  const width = PAD * 2 + cols * W + (cols - 1) * GAP;
  const height = PAD * 2 + rows * H + (rows - 1) * 24;
  const g = svg('svg', { class: 'graph', id: 'graph', viewBox: `0 0 ${width} ${height}`, height });
  const mid = height / 2 - H / 2;
  const pos = new Map();
  chain.forEach((n, i) => pos.set(n.name, { x: PAD + i * (W + GAP), y: mid }));
  sinks.forEach((s, i) => pos.set('sink:' + s.name, { x: PAD + chain.length * (W + GAP), y: PAD + i * (H + 24) }));
  const hop = (from, to, target) => {
    const a = pos.get(from), b = pos.get(to);
    const f = last.fill[target];
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    g.append(svg('line', { class: 'hop', 'data-to': target, 'data-fill': f === undefined ? '' : f.toFixed(3),
      x1, y1, x2, y2, stroke: fillColour(f), 'stroke-width': 7, 'stroke-linecap': 'round' }),
    svg('text', { class: 'hop-label', x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 8, 'text-anchor': 'middle' }, fmt.pct(f)));
  };
  for (let i = 1; i < chain.length; i++) hop(chain[i - 1].name, chain[i].name, chain[i].name);
  for (const s of sinks) hop(chain[chain.length - 1].name, 'sink:' + s.name, s.name);
  const node = (key, n, inRate, outRate, extra) => {
    const p = pos.get(key);
    const grp = svg('g', { class: 'node', 'data-node': n.name, transform: `translate(${p.x},${p.y})` },
      svg('rect', { width: W, height: H }),
      svg('text', { class: 'title', x: 10, y: 18 }, n.name),
      svg('text', { class: 'sub', x: 10, y: 33 }, n.kind || ''),
      svg('text', { x: 10, y: 50 }, `in ${fmt.rate(inRate)}/s · out ${fmt.rate(outRate)}/s`),
      svg('text', { class: 'sub', x: 10, y: 64 }, extra),
      svg('polyline', { class: 'spark', transform: `translate(10,${H - 22})`, points: sparkPoints(series(n.name), W - 20, 16) }));
    g.append(grp);
  };
  chain.forEach((n, i) => {
    const inRate = i === 0 ? null : last.rows[chain[i - 1].name];
    const extra = n.stage ? `busy ${fmt.pct(last.busy[n.name])} · dead letters ${n.letters}` : `rows ${d.source.rows}`;
    node(n.name, n, inRate, last.rows[n.name], extra);
  });
  for (const s of sinks) node('sink:' + s.name, s, last.rows[s.name], null, `rows ${s.rows}`);
  return g;
}

// ---------- dead letters ----------
function letters(body, name, base) {
  const stage = h('select', { id: 'dl-stage' }, h('option', { value: '' }, 'every stage'));
  const text = h('input', { id: 'dl-filter', placeholder: 'document or error contains…', size: 32 });
  const flash = h('div');
  const list = h('div');
  const selected = new Set();
  const replay = async (body) => {
    try {
      const r = await post(base + '/dead_letters/replay', body);
      flash.replaceChildren(h('p', { class: 'flash', id: 'dl-flash' }, `replaying ${r.replaying} document(s): the pipeline reads them again`));
      selected.clear();
      setTimeout(load, 1500);
    } catch (e) { flash.replaceChildren(h('p', { class: 'error', id: 'dl-flash' }, e.message)); }
  };
  const bar = h('div', { class: 'row' }, stage, text,
    h('button', { id: 'dl-apply', onclick: () => load() }, 'Filter'),
    h('button', { id: 'dl-replay', class: 'primary', onclick: () => selected.size && replay({ ids: [...selected] }) }, 'Replay selected'),
    h('button', { id: 'dl-replay-all', onclick: () => replay({ all: true }) }, 'Replay all'));
  body.append(bar, flash, list);
  json(base).then((d) => {
    for (const n of ['source', ...d.stages.map((s) => s.name), ...d.sinks.filter((s) => !s.name.includes(':')).map((s) => s.name)])
      stage.append(h('option', { value: n }, n));
  }).catch(() => {});
  async function load() {
    const where = [];
    if (stage.value) where.push('stage = ' + quote(stage.value));
    if (text.value.trim()) {
      const t = quote(text.value.trim());
      where.push(`(strpos(doc_id, ${t}) > 0 OR strpos(error, ${t}) > 0)`);
    }
    const q = 'SELECT id, doc_id, stage, error, CAST(time AS VARCHAR) AS time FROM dead_letters' +
      (where.length ? ' WHERE ' + where.join(' AND ') : '') + ' ORDER BY time DESC LIMIT 500';
    let rows;
    try { rows = await post('/v1/sql', { pipeline: name, query: q }); } catch (e) { return fail(list, e); }
    if (!rows.length) return list.replaceChildren(h('p', { class: 'muted', id: 'dl-empty' }, 'No open dead letters.'));
    const tbody = h('tbody');
    for (const r of rows) {
      const box = h('input', { type: 'checkbox', class: 'dl-pick', checked: selected.has(r.id),
        onchange: (ev) => (ev.target.checked ? selected.add(r.id) : selected.delete(r.id)) });
      const detail = h('tr', { class: 'letter-detail', hidden: true },
        h('td', { colspan: 6, class: 'mono wrap' }, `id ${r.id}\ndocument ${r.doc_id}\nstage ${r.stage}\ntime ${r.time}\n\n${r.error}`));
      tbody.append(h('tr', { class: 'letter', 'data-id': r.id },
        h('td', {}, box), h('td', { class: 'mono' }, r.doc_id), h('td', {}, r.stage),
        h('td', { class: 'mono' }, fmt.cut(r.error, 110)), h('td', { class: 'muted' }, r.time),
        h('td', {}, h('button', { class: 'dl-show', onclick: () => { detail.hidden = !detail.hidden; } }, 'Show'))), detail);
    }
    list.replaceChildren(h('table', { id: 'letters' },
      h('thead', {}, h('tr', {}, ['', 'document', 'stage', 'error', 'time', ''].map((t) => h('th', {}, t)))), tbody));
  }
  load();
}

// ---------- SQL ----------
function resultTable(rows, id) {
  if (!rows.length) return h('p', { class: 'muted', id }, 'No rows.');
  const cols = Object.keys(rows[0]);
  return h('div', { class: 'scroll' }, h('table', { id },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, cols.map((c) => {
      const v = r[c];
      const s = v === null ? 'null' : typeof v === 'object' ? JSON.stringify(v) : String(v);
      return h('td', { class: typeof v === 'number' ? 'num' : 'mono', title: s.length > 60 ? s.slice(0, 2000) : null }, fmt.cut(s, 200));
    }))))));
}

function sqlTab(body, name, base) {
  const tables = h('div', { class: 'tables panel', id: 'sql-tables' }, h('p', { class: 'muted' }, 'Loading tables…'));
  const query = h('textarea', { id: 'sql-query', spellcheck: 'false' });
  const out = h('div', { id: 'sql-out' });
  const run = async () => {
    out.replaceChildren(h('p', { class: 'muted' }, 'Running…'));
    try {
      const rows = await post('/v1/sql', { pipeline: name, query: query.value });
      out.replaceChildren(h('p', { class: 'muted' }, `${rows.length} row(s)`), resultTable(rows, 'sql-result'));
    } catch (e) { out.replaceChildren(h('p', { class: 'error', id: 'sql-error' }, e.message)); }
  };
  query.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) run(); });
  body.append(h('div', { class: 'cols' }, tables,
    h('div', {}, query, h('div', { class: 'row' }, h('button', { id: 'sql-run', class: 'primary', onclick: run }, 'Run'),
      h('span', { class: 'muted' }, 'read-only: SELECT, WITH, EXPLAIN · Ctrl+Enter')), out)));
  json(base + '/tables').then((r) => {
    tables.replaceChildren(...r.tables.map((t) => h('details', { 'data-table': t.name },
      h('summary', {}, t.name),
      h('ul', {}, t.columns.map((c) => h('li', {}, c.name + ' ', h('span', {}, c.type)))))));
    if (!query.value && r.tables.length) query.value = `SELECT * FROM "${r.tables[0].name}" LIMIT 20`;
  }).catch((e) => fail(tables, e));
}

// ---------- live tail ----------
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let name = 'message', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

function tailTab(body, name, base) {
  const point = h('select', { id: 'tail-point' });
  const where = h('input', { id: 'tail-where', placeholder: 'SQL predicate, e.g. chunk_index = 0', size: 36 });
  const toggle = h('button', { id: 'tail-toggle', class: 'primary' }, 'Start');
  const status = h('span', { id: 'tail-status', class: 'muted' }, 'not following');
  const out = h('div', { id: 'tail-out' });
  body.append(h('div', { class: 'row' }, point, where, toggle, status), out);
  let ctrl = null, rows = [], shown = 0, dropped = 0, columns = null;
  const draw = () => {
    const cols = columns || [];
    out.replaceChildren(h('div', { class: 'scroll' }, h('table', { id: 'tail-rows' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))),
      h('tbody', {}, rows.map((r) => h('tr', { class: 'tail-row' }, cols.map((c) => {
        const v = r[c];
        const text = v === null ? 'null' : String(v);
        return h('td', { class: typeof v === 'number' ? 'num' : 'mono', title: text.length > 60 ? text : null }, text);
      })))))));
  };
  const say = (extra) => { status.textContent = `${shown} row(s) shown · ${dropped} dropped` + (extra ? ' · ' + extra : ''); };
  const stop = (why) => { if (ctrl) ctrl.abort(); ctrl = null; toggle.textContent = 'Start'; say(why); };
  onLeave(() => { if (ctrl) ctrl.abort(); });
  const start = async () => {
    ctrl = new AbortController();
    toggle.textContent = 'Pause';
    const q = new URLSearchParams({ width: '80' });
    if (where.value.trim()) q.set('where', where.value.trim());
    say('following');
    try {
      const r = await call(`${base}/tail/${enc(point.value)}?${q}`, { signal: ctrl.signal });
      if (!r.ok) { const b = await r.json().catch(() => ({})); throw new Error(b.error || r.statusText); }
      await readEvents(r, (event, data) => {
        if (event === 'rows') {
          columns = columns || Object.keys(data[0] || {});
          rows = data.concat(rows).slice(0, 200);
          shown += data.length;
          draw();
          say('following');
        } else if (event === 'dropped') { dropped += data; say('following'); }
        else if (event === 'restarted') say('the pipeline started a new run');
        else if (event === 'end') stop('ended: ' + data);
      });
    } catch (e) {
      if (e.name !== 'AbortError') { stop(); out.prepend(h('p', { class: 'error', id: 'tail-error' }, e.message)); }
    }
  };
  toggle.addEventListener('click', () => (ctrl ? stop('paused') : start()));
  json(base).then((d) => {
    const names = ['source', ...d.stages.map((s) => s.name), ...d.sinks.filter((s) => !s.name.includes(':')).map((s) => s.name)];
    for (const n of names) point.append(h('option', { value: n }, n));
    if (d.stages.length) point.value = d.stages[d.stages.length - 1].name;
  }).catch((e) => fail(out, e));
}

// ---------- search and evaluation ----------
function searchTab(body, name, base) {
  const query = h('input', { id: 'search-query', placeholder: 'ask the index…', size: 48 });
  const mode = h('select', { id: 'search-mode' }, ['vector', 'text', 'hybrid'].map((m) => h('option', { value: m }, m)));
  const k = h('input', { id: 'search-k', type: 'number', value: 5, min: 1, max: 100, size: 4 });
  const out = h('div', { id: 'search-out' });
  const run = async () => {
    out.replaceChildren(h('p', { class: 'muted' }, 'Searching…'));
    try {
      const r = await post('/v1/search', { pipeline: name, query: query.value, mode: mode.value, k: Number(k.value) || 5 });
      // Rank, score, the text and its document first; then the rest of the
      // row, its lineage among it.
      const rows = r.hits.map((hit) => Object.assign(
        { rank: hit.rank, score: Number(hit.score.toFixed(4)), text: hit.row.text, doc_id: hit.row.doc_id }, hit.row));
      out.replaceChildren(h('p', { class: 'muted' }, `${r.hits.length} hit(s) from ${r.sink} in ${r.took_ms.toFixed(1)} ms (${r.mode})`),
        resultTable(rows, 'search-hits'));
    } catch (e) { out.replaceChildren(h('p', { class: 'error', id: 'search-error' }, e.message)); }
  };
  query.addEventListener('keydown', (e) => { if (e.key === 'Enter') run(); });
  const evalBox = h('div', { id: 'eval-out' }, h('p', { class: 'muted' }, 'Loading evaluations…'));
  body.append(h('div', { class: 'row' }, query, mode, k, h('button', { id: 'search-run', class: 'primary', onclick: run }, 'Search')), out,
    h('h2', {}, 'Evaluation'), evalBox);
  json(base + '/eval').then((r) => {
    if (!r.runs.length) return evalBox.replaceChildren(h('p', { class: 'muted', id: 'eval-none' }, 'No evaluation yet: run `sluice eval`.'));
    const last = r.runs[r.runs.length - 1];
    const rows = [];
    for (const m of last.modes) for (const a of m.at_k)
      rows.push({ mode: m.mode, k: a.k, recall: +a.recall.toFixed(3), mrr: +a.mrr.toFixed(3), ndcg: +a.ndcg.toFixed(3), 'p50 ms': +m.latency_ms.p50.toFixed(1) });
    const history = r.runs.slice().reverse().map((run) => {
      const m = run.modes[0], a = m && m.at_k[m.at_k.length - 1];
      return { at: run.at, sink: run.sink, questions: run.questions, mode: m ? m.mode : '', k: a ? a.k : '', recall: a ? +a.recall.toFixed(3) : '', ndcg: a ? +a.ndcg.toFixed(3) : '' };
    });
    evalBox.replaceChildren(h('p', { class: 'muted' }, `last run ${last.at} over ${last.questions} questions (${last.questions_file})`),
      resultTable(rows, 'eval-last'), h('h2', {}, 'History'), resultTable(history, 'eval-history'));
  }).catch((e) => fail(evalBox, e));
}

route();
