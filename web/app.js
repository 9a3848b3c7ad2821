// Dragon's market explorer: one page, hash routes (#/deal/0x…), the REST API for state and the plain
// WebSocket feed (/feed) for every change after it. No framework, no dependency, no polling.
'use strict';
(() => {
  const CHAIN = Number(document.querySelector('meta[name="dragon-chain"]').content);
  const view = document.getElementById('view');
  const NRLC = 1000000000n;
  const STATUSES = ['UNSET', 'ACTIVE', 'REVEALING', 'COMPLETED', 'FAILED'];

  // ---------------------------------------------------------------------------------------------------------
  // Formatting

  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const big = (n) => { try { return BigInt(String(n ?? 0)); } catch { return 0n; } };
  const group = (s) => s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');

  /** nRLC as RLC text: exact, trailing zeros dropped. */
  function rlcText(n) {
    const v = big(n);
    const neg = v < 0n;
    const a = neg ? -v : v;
    const frac = (a % NRLC).toString().padStart(9, '0').replace(/0+$/, '');
    return `${neg ? '-' : ''}${group((a / NRLC).toString())}${frac ? '.' + frac : ''} RLC`;
  }
  /** An amount: RLC, with the exact nRLC underneath and on hover. */
  function amount(n, { inline = false } = {}) {
    const exact = `${group(big(n).toString())} nRLC`;
    return `<span class="amt" title="${esc(exact)}">${esc(rlcText(n))}${inline ? '' : `<small>${esc(exact)}</small>`}</span>`;
  }
  const short = (h) => (h && h.length > 14 ? `${h.slice(0, 6)}…${h.slice(-4)}` : h || '');
  const COPY_ICON = '<svg width="12" height="12" viewBox="0 0 16 16" aria-hidden="true"><rect x="5" y="5" width="9" height="9" rx="1.5" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M3 11V3a1 1 0 0 1 1-1h7" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>';
  /** A hash or address, shortened, linked to its page when `route` is given, with a copy button. */
  function hash(h, route) {
    if (!h) return '<span class="muted">—</span>';
    const text = esc(short(h));
    const inner = route ? `<a href="#/${route}/${esc(h)}">${text}</a>` : text;
    return `<span class="hash" title="${esc(h)}">${inner}<button type="button" class="copy" data-copy="${esc(h)}" aria-label="Copy ${esc(h)}" title="Copy">${COPY_ICON}</button></span>`;
  }
  const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000';
  const addr = (a) => (!a || a === ZERO_ADDRESS ? '<span class="muted">any</span>' : hash(a, 'address'));
  const badge = (s) => `<span class="badge ${esc(s)}">${esc(s)}</span>`;
  function ago(iso) {
    if (!iso) return '—';
    const t = new Date(iso);
    const s = Math.max(0, Math.round((Date.now() - t.getTime()) / 1000));
    const rel = s < 2 ? 'just now' : s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : s < 86400 ? `${Math.floor(s / 3600)} h ago` : t.toISOString().slice(0, 10);
    return `<time datetime="${esc(iso)}" title="${esc(t.toISOString())}">${rel}</time>`;
  }
  const catName = (id) => {
    const c = categories.find((x) => Number(x.catid) === Number(id));
    return c ? `${esc(c.name)} <small class="muted">#${esc(id)}</small>` : `#${esc(id)}`;
  };
  /** Hex bytes as text when they are printable UTF-8 (a result's location, usually), else as hex. */
  function bytesText(hex) {
    if (!hex || hex === '0x') return '—';
    try {
      const b = new Uint8Array(hex.slice(2).match(/../g).map((x) => parseInt(x, 16)));
      const t = new TextDecoder('utf-8', { fatal: true }).decode(b);
      if (!/^[\x20-\x7e\s]*$/.test(t)) return `<code>${esc(hex)}</code>`;
      // PoCo's result link: {"storage": "ipfs", "location": "/results/0x…"}; the whole text on hover and copy.
      let link = null;
      try { link = JSON.parse(t); } catch { /* plain text */ }
      if (link && typeof link.location === 'string') {
        const where = link.location.replace(/0x[0-9a-fA-F]{16,}/g, (h) => short(h));
        return `<span class="hash" title="${esc(t)}"><code>${esc(link.storage || 'result')}: ${esc(where)}</code><button type="button" class="copy" data-copy="${esc(link.location)}" aria-label="Copy the result's location" title="Copy">${COPY_ICON}</button></span>`;
      }
      return /^https?:\/\//.test(t) ? `<a href="${esc(t)}" rel="noreferrer">${esc(t)}</a>` : `<code>${esc(t)}</code>`;
    } catch { /* not text */ }
    return `<code>${esc(hex)}</code>`;
  }

  function toast(text) {
    const t = document.getElementById('toast');
    t.textContent = text;
    t.classList.add('show');
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => t.classList.remove('show'), 1600);
  }

  document.addEventListener('click', async (e) => {
    const b = e.target.closest('[data-copy]');
    if (!b) return;
    e.preventDefault();
    const text = b.getAttribute('data-copy');
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const ta = Object.assign(document.createElement('textarea'), { value: text });
      document.body.append(ta);
      ta.select();
      document.execCommand('copy');
      ta.remove();
    }
    toast(`Copied ${text.length > 24 ? `${text.slice(0, 12)}…${text.slice(-6)}` : text}`);
  });

  // ---------------------------------------------------------------------------------------------------------
  // The REST API

  async function api(path, params = {}) {
    const q = new URLSearchParams({ chainId: String(CHAIN) });
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v));
    const r = await fetch(`${path}?${q}`, { headers: { accept: 'application/json' } });
    const body = await r.json().catch(() => ({ ok: false, error: `HTTP ${r.status}` }));
    if (!r.ok || body.ok === false) throw new Error(body.error || `HTTP ${r.status}`);
    return body;
  }

  // ---------------------------------------------------------------------------------------------------------
  // The live feed: one WebSocket, every topic of this chain; views register what they do with events.

  const live = document.getElementById('live');
  let handlers = {};
  let socket = null;
  let retry = 0;
  let wasConnected = false;

  function setLive(on, text) {
    live.dataset.live = on ? 'on' : 'off';
    live.title = `Live feed: ${text}`;
    live.querySelector('span').textContent = text;
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/feed`);
    socket = ws;
    let acks = 0;
    ws.onopen = () => {
      for (const topic of ['orders', 'deals', 'tasks']) ws.send(JSON.stringify({ op: 'subscribe', chainId: CHAIN, topic }));
    };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      if (msg.ok && msg.op === 'subscribe') {
        acks += 1;
        if (acks === 3) {
          retry = 0;
          setLive(true, 'live');
          // Events were missed while disconnected: read the current state again.
          if (wasConnected) route();
          wasConnected = true;
        }
        return;
      }
      if (!msg.event) return;
      const f = handlers[msg.event] || handlers[msg.event.replace(/^(app|dataset|workerpool|request)order_/, 'order_')];
      if (f) {
        try { f(msg.data, msg.event); } catch (err) { console.warn('feed handler', err); }
      }
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      setLive(false, 'reconnecting');
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 500 * 2 ** (retry - 1));
    };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Charts: hand-made SVG, sized to their container.

  const SVG = 'http://www.w3.org/2000/svg';
  function priceUnit(max) {
    // Axis labels are rounded (three significant digits); exact amounts are in the tooltips and tables.
    const rlc = (v) => (Number(v) / 1e9).toLocaleString('en-US', { maximumSignificantDigits: 3 });
    return max < 100000n ? { name: 'nRLC', f: (v) => group(v.toString()) } : { name: 'RLC', f: rlc };
  }
  function ticks(min, max, n) {
    if (max <= min) return [min];
    const out = [];
    for (let i = 0; i <= n; i += 1) out.push(min + ((max - min) * i) / n);
    return out;
  }
  function svgOpen(w, h, label) {
    return `<svg class="chart" xmlns="${SVG}" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="${esc(label)}">`;
  }
  const chartWidth = (el) => Math.max(320, Math.floor(el.clientWidth || 600));

  /** Cumulative volume by price: bids (requests) to the left of the best bid, asks (offers) to the right. */
  function depthChart(el, asks, bids) {
    const levels = (orders, desc) => {
      const m = new Map();
      for (const o of orders) m.set(o.price, (m.get(o.price) || 0) + o.remaining);
      const ps = [...m.keys()].sort((a, b) => (a < b ? (desc ? 1 : -1) : a > b ? (desc ? -1 : 1) : 0));
      let cum = 0;
      return ps.map((p) => ({ p, v: (cum += m.get(p)) }));
    };
    const A = levels(asks, false);
    const B = levels(bids, true);
    if (!A.length && !B.length) {
      el.innerHTML = '<div class="chart-empty">No open offers or requests in this category yet</div>';
      return;
    }
    const w = chartWidth(el);
    const h = 270;
    const pad = { l: 56, r: 12, t: 22, b: 30 };
    const prices = [...A, ...B].map((x) => x.p);
    let lo = prices.reduce((a, b) => (b < a ? b : a));
    let hi = prices.reduce((a, b) => (b > a ? b : a));
    // A margin on both sides, so that the extreme levels show as steps rather than on the frame.
    const margin = (hi - lo) / 8n || (hi / 8n) || 1n;
    lo = lo > margin ? lo - margin : 0n;
    hi += margin;
    const span = Number(hi - lo);
    const maxV = Math.max(...A.map((x) => x.v), ...B.map((x) => x.v), 1);
    const x = (p) => pad.l + (Number(p - lo) / span) * (w - pad.l - pad.r);
    const y = (v) => h - pad.b - (v / maxV) * (h - pad.t - pad.b);
    const step = (pts, toRight) => {
      if (!pts.length) return '';
      const edge = toRight ? w - pad.r : pad.l;
      let d = `M${x(pts[0].p)},${y(0)}`;
      let prev = 0;
      for (const pt of pts) d += ` L${x(pt.p)},${y(prev)} L${x(pt.p)},${y(pt.v)}`, prev = pt.v;
      d += ` L${edge},${y(prev)} L${edge},${y(0)} Z`;
      return d;
    };
    const unit = priceUnit(hi);
    let s = svgOpen(w, h, 'Depth chart');
    for (const v of ticks(0, maxV, 4)) {
      s += `<line class="axis" x1="${pad.l}" x2="${w - pad.r}" y1="${y(v)}" y2="${y(v)}"/><text x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end">${Math.round(v)}</text>`;
    }
    const distinct = [...new Set(prices)];
    const labelled = distinct.length <= 8 ? distinct : ticks(Number(lo), Number(hi), 4).map((t) => BigInt(Math.round(t)));
    for (const p of labelled) {
      s += `<line class="axis" x1="${x(p)}" x2="${x(p)}" y1="${h - pad.b}" y2="${h - pad.b + 4}"/><text x="${x(p)}" y="${h - 10}" text-anchor="middle">${esc(unit.f(p))}</text>`;
    }
    s += `<text x="${pad.l - 6}" y="12" text-anchor="end">tasks</text><text x="${w - pad.r}" y="12" text-anchor="end">price per task, ${unit.name}</text>`;
    if (B.length) s += `<path class="bid" d="${step(B, false)}"><title>Requests: ${B.length} price levels</title></path>`;
    if (A.length) s += `<path class="ask" d="${step(A, true)}"><title>Offers: ${A.length} price levels</title></path>`;
    el.innerHTML = `${s}</svg>`;
  }

  /** Price of every deal over time (line), with its volume (bars). */
  function priceChart(el, rows) {
    if (!rows.length) {
      el.innerHTML = '<div class="chart-empty">No deal in this category yet</div>';
      return;
    }
    const w = chartWidth(el);
    const h = 270;
    const pad = { l: 56, r: 12, t: 22, b: 30 };
    // One step per deal, in chain order: deals come in bursts, so a time axis would pile them up.
    const pts = rows.map(([t, p, v], i) => ({ i, t: new Date(t).getTime(), p: big(p), v: Number(v) }));
    const n = Math.max(pts.length - 1, 1);
    let lo = pts.reduce((a, b) => (b.p < a ? b.p : a), pts[0].p);
    let hi = pts.reduce((a, b) => (b.p > a ? b.p : a), pts[0].p);
    const margin = (hi - lo) / 6n || (hi / 6n) || 1n;
    lo = lo > margin ? lo - margin : 0n;
    hi += margin;
    const maxV = Math.max(...pts.map((p) => p.v), 1);
    const x = (i) => pad.l + 8 + (i / n) * (w - pad.l - pad.r - 16);
    const y = (p) => pad.t + (1 - Number(p - lo) / Number(hi - lo)) * (h - pad.t - pad.b - 36);
    const vy = (v) => (v / maxV) * 32;
    const unit = priceUnit(hi);
    let s = svgOpen(w, h, 'Price history');
    const distinct = [...new Set(pts.map((q) => q.p))];
    const labelled = distinct.length <= 6 ? distinct : ticks(Number(lo), Number(hi), 3).map((t) => BigInt(Math.round(t)));
    for (const p of labelled) {
      s += `<line class="axis" x1="${pad.l}" x2="${w - pad.r}" y1="${y(p)}" y2="${y(p)}"/><text x="${pad.l - 6}" y="${y(p) + 4}" text-anchor="end">${esc(unit.f(p))}</text>`;
    }
    for (const p of pts) {
      const bh = vy(p.v);
      s += `<rect class="vol" x="${x(p.i) - 3}" y="${h - pad.b - bh}" width="6" height="${bh}"/>`;
    }
    const line = pts.map((p, i) => (i ? `L${x(p.i)},${y(pts[i - 1].p)} L${x(p.i)},${y(p.p)}` : `M${x(p.i)},${y(p.p)}`)).join(' ');
    s += `<path class="price" d="${line}"/>`;
    for (const p of pts) {
      s += `<circle class="dot" cx="${x(p.i)}" cy="${y(p.p)}" r="3.5"><title>${esc(new Date(p.t).toISOString())}: ${esc(rlcText(p.p))} (${group(p.p.toString())} nRLC) × ${p.v}</title></circle>`;
    }
    const when = (t) => new Date(t).toISOString().replace('T', ' ').slice(0, 19);
    s += `<text x="${pad.l}" y="${h - 10}">${when(pts[0].t)} UTC</text><text x="${w - pad.r}" y="${h - 10}" text-anchor="end">${pts.length} deal${pts.length > 1 ? 's' : ''} · ${when(pts[pts.length - 1].t)} UTC</text>`;
    s += `<text x="${pad.l - 6}" y="10" text-anchor="end">${unit.name}</text>`;
    el.innerHTML = `${s}</svg>`;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Rows shared by several views

  const dealPrice = (d) => big(d.app?.price) + big(d.dataset?.price) + big(d.workerpool?.price);
  // Columns of a deal table: `market` (one category: no category, no requester) or `pool` (no pool column).
  const DEAL_COLUMNS = {
    all: { category: true, pool: true, requester: true },
    market: { category: false, pool: true, requester: false },
    pool: { category: true, pool: false, requester: true },
  };
  function dealRow(d, kind = 'all') {
    const c = DEAL_COLUMNS[kind];
    return `<tr data-deal="${esc(d.dealid)}">
      <td>${hash(d.dealid, 'deal')}</td>
      ${c.category ? `<td>${catName(d.category)}</td>` : ''}
      ${c.pool ? `<td>${hash(d.workerpool?.pointer, 'pool')}</td>` : ''}
      ${c.requester ? `<td>${hash(d.requester, 'address')}</td>` : ''}
      <td class="num">${esc(d.volume)}</td>
      <td class="num">${amount(d.workerpool?.price, { inline: kind !== 'all' })}</td>
      <td class="when">${ago(d.blockTimestamp)}</td></tr>`;
  }
  function dealTable(deals, empty = 'No deal yet', kind = 'all') {
    const c = DEAL_COLUMNS[kind];
    const head = `<tr><th>Deal</th>${c.category ? '<th>Category</th>' : ''}${c.pool ? '<th>Pool</th>' : ''}${c.requester ? '<th>Requester</th>' : ''}<th class="num">Tasks</th><th class="num">${kind === 'all' ? 'Pool price / task' : 'Price'}</th><th>When</th></tr>`;
    return `<div class="scroll"><table class="deals" data-kind="${kind}"><thead>${head}</thead><tbody>${deals.map((d) => dealRow(d, kind)).join('') || `<tr class="none"><td colspan="7" class="empty">${esc(empty)}</td></tr>`}</tbody></table></div>`;
  }
  function prependDeal(el, d, limit) {
    const body = el.querySelector('table.deals tbody');
    if (!body || body.querySelector(`tr[data-deal="${CSS.escape(d.dealid)}"]`)) return;
    body.querySelector('tr.none')?.remove();
    body.insertAdjacentHTML('afterbegin', dealRow(d, el.querySelector('table.deals').dataset.kind));
    body.firstElementChild.classList.add('flash');
    while (body.children.length > limit) body.lastElementChild.remove();
  }

  function taskRow(t) {
    return `<tr data-task="${esc(t.taskid)}" data-status="${esc(t.status)}">
      <td>${hash(t.taskid, 'task')}</td>
      <td>${hash(t.dealid, 'deal')}</td>
      <td class="num">${esc(t.idx)}</td>
      <td class="status">${badge(t.status)}</td>
      <td class="event">${esc(t.lastEvent || '—')}</td>
      <td class="num block">${esc(t.blockNumber ?? '—')}</td></tr>`;
  }
  const taskHead = '<tr><th>Task</th><th>Deal</th><th class="num">Index</th><th>Status</th><th>Last event</th><th class="num">Block</th></tr>';
  function taskTable(tasks, empty = 'No task yet') {
    return `<div class="scroll"><table class="tasks"><thead>${taskHead}</thead><tbody>${tasks.map(taskRow).join('') || `<tr class="none"><td colspan="6" class="empty">${esc(empty)}</td></tr>`}</tbody></table></div>`;
  }
  /** Applies a task_updated event to the rows showing that task; false when none does. */
  function updateTask(root, t) {
    const rows = root.querySelectorAll(`tr[data-task="${CSS.escape(t.taskid)}"]`);
    for (const r of rows) {
      r.dataset.status = t.status;
      r.querySelector('.status').innerHTML = badge(t.status);
      r.querySelector('.event').textContent = t.event || '—';
      const b = r.querySelector('.block');
      if (b) b.textContent = t.blockNumber ?? '—';
      r.classList.remove('flash');
      void r.offsetWidth;
      r.classList.add('flash');
    }
    return rows.length > 0;
  }

  function orderRow(o, side) {
    const price = side === 'bid' ? o.order.workerpoolmaxprice : o.order.workerpoolprice;
    const who = side === 'bid' ? hash(o.order.requester, 'address') : hash(o.order.workerpool, 'pool');
    return `<tr data-order="${esc(o.orderHash)}">
      <td>${hash(o.orderHash, 'order')}</td><td>${who}</td>
      <td class="num">${esc(o.remaining)}<small class="muted"> / ${esc(o.order.volume)}</small></td>
      <td class="num side-${side}">${amount(price)}</td></tr>`;
  }

  /** Refreshes a view's part after a burst of events, once. */
  function debounce(f, ms = 150) {
    let t = null;
    return (...a) => { clearTimeout(t); t = setTimeout(() => f(...a), ms); };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Views

  let categories = [];
  let token = 0; // the current render; a slower earlier one must not overwrite it

  function shell(html) { view.innerHTML = html; }
  function failed(err) {
    shell(`<div class="notice">Could not load this view: ${esc(err.message)}</div>`);
  }

  /** The book of one category: both sides held in full (up to 1,000 orders each) and kept by the feed. */
  async function market(cat) {
    const my = token;
    const cats = categories.length ? categories : [{ catid: 0, name: 'category 0' }];
    const current = cat ?? Number(cats[0].catid);
    const book = { asks: new Map(), bids: new Map() };
    let prices = [];
    const pendingDeals = [];
    const known = new Set(); // deals already counted in the tables and the price history
    const pending = [];
    let loaded = false;
    const toOrder = (o) => ({ ...o, price: big(o.order.workerpoolprice ?? o.order.workerpoolmaxprice) });
    const sideOf = (name) => (name.startsWith('workerpoolorder') ? 'asks' : name.startsWith('requestorder') ? 'bids' : null);
    const apply = (data, name) => {
      if (!loaded) { pending.push([data, name]); return; }
      if (name.endsWith('_unpublished')) {
        book.asks.delete(data);
        book.bids.delete(data);
      } else {
        const side = sideOf(name);
        if (!side || Number(data.order?.category) !== current) return;
        if (data.status === 'open' && data.remaining > 0) book[side].set(data.orderHash, toOrder(data));
        else book[side].delete(data.orderHash);
      }
      redrawBook(name.endsWith('_published') && data.orderHash);
    };
    handlers = {
      order_published: apply,
      order_updated: apply,
      order_unpublished: apply,
      deal_created: function onDeal(d) {
        if (Number(d.category) !== current) return;
        if (!loaded) { pendingDeals.push(d); return; }
        if (known.has(d.dealid)) return;
        known.add(d.dealid);
        prependDeal(document.getElementById('m-deals'), d, 10);
        // The price history is the deals' own prices: the event carries everything a point needs.
        prices.push([d.blockTimestamp, d.workerpool?.price ?? 0, d.volume]);
        prices.sort((a, b) => new Date(a[0]) - new Date(b[0]));
        prices.splice(0, Math.max(0, prices.length - 1000));
        priceChart(document.getElementById('m-prices'), prices);
        refreshTasks();
      },
      task_updated: (t) => {
        if (Number(t.category) !== current) return;
        if (!updateTask(document.getElementById('m-tasks'), t)) refreshTasks();
      },
    };
    shell(`
      <div class="tabs" role="tablist">${cats.map((c) => `<a role="tab" href="#/market/${esc(c.catid)}" class="${Number(c.catid) === current ? 'on' : ''}">${esc(c.name)}<small>#${esc(c.catid)}</small></a>`).join('')}</div>
      <div class="stats" id="m-stats"></div>
      <div class="grid">
        <section class="panel span-7"><header><h2>Depth</h2><span class="legend"><span><i style="background:var(--bid)"></i>requests (bids)</span><span><i style="background:var(--ask)"></i>offers (asks)</span></span></header><div id="m-depth" class="chart-box"></div></section>
        <section class="panel span-5"><header><h2>Best offers</h2><span class="hint">workerpool orders, cheapest first</span></header><div id="m-asks" class="scroll"></div>
          <header style="margin-top:.8rem"><h2>Best requests</h2><span class="hint">highest price first</span></header><div id="m-bids" class="scroll"></div></section>
        <section class="panel span-6"><header><h2>Price history</h2><span class="hint">workerpool price of each deal</span></header><div id="m-prices" class="chart-box"></div></section>
        <section class="panel span-6"><header><h2>Recent deals</h2><a class="hint" href="#/deals">all deals →</a></header><div id="m-deals"></div></section>
        <section class="panel span-12"><header><h2>Tasks</h2><span class="hint">statuses follow the chain live</span></header><div id="m-tasks"></div></section>
      </div>`);

    function redrawBook(fresh) {
      const asks = [...book.asks.values()].sort((a, b) => (a.price < b.price ? -1 : a.price > b.price ? 1 : 0));
      const bids = [...book.bids.values()].sort((a, b) => (a.price > b.price ? -1 : a.price < b.price ? 1 : 0));
      const bestAsk = asks[0]?.price;
      const bestBid = bids[0]?.price;
      const sum = (xs) => xs.reduce((n, o) => n + o.remaining, 0);
      document.getElementById('m-stats').innerHTML = `
        <div class="stat"><div class="k">Best offer</div><div class="v ask">${bestAsk === undefined ? '—' : amount(bestAsk)}</div></div>
        <div class="stat"><div class="k">Best request</div><div class="v bid">${bestBid === undefined ? '—' : amount(bestBid)}</div></div>
        <div class="stat"><div class="k">Spread</div><div class="v">${bestAsk !== undefined && bestBid !== undefined ? amount(bestAsk - bestBid) : '—'}</div></div>
        <div class="stat"><div class="k">Tasks offered</div><div class="v" id="m-offered">${sum(asks)}</div></div>
        <div class="stat"><div class="k">Tasks requested</div><div class="v">${sum(bids)}</div></div>`;
      const table = (xs, side, empty) => (xs.length
        ? `<table class="book-${side}"><thead><tr><th>Order</th><th>${side === 'ask' ? 'Pool' : 'Requester'}</th><th class="num">Tasks left</th><th class="num">Price / task</th></tr></thead><tbody>${xs.slice(0, 8).map((o) => orderRow(o, side)).join('')}</tbody></table>`
        : `<div class="empty">${empty}</div>`);
      document.getElementById('m-asks').innerHTML = table(asks, 'ask', 'No open offer');
      document.getElementById('m-bids').innerHTML = table(bids, 'bid', 'No open request');
      if (fresh) document.querySelector(`tr[data-order="${CSS.escape(fresh)}"]`)?.classList.add('flash');
      depthChart(document.getElementById('m-depth'), asks, bids);
    }
    const refreshTasks = debounce(async () => {
      const { tasks } = await api('/tasks', { category: current, pageSize: 12 });
      if (my === token) document.getElementById('m-tasks').innerHTML = taskTable(tasks, 'No task in this category yet');
    });

    const [offers, requests, ohlc, deals, tasks] = await Promise.all([
      api('/workerpoolorders', { category: current, app: 'any', dataset: 'any', requester: 'any', pageSize: 1000 }),
      api('/requestorders', { category: current, workerpool: 'any', pageSize: 1000 }),
      api('/ohlc', { category: current }),
      api('/deals', { category: current, pageSize: 10 }),
      api('/tasks', { category: current, pageSize: 12 }),
    ]);
    if (my !== token) return;
    if (offers.count > offers.orders.length || requests.count > requests.orders.length) {
      document.getElementById('m-asks').insertAdjacentHTML('beforebegin', `<p class="hint">The book shows the best ${offers.orders.length} of ${offers.count} offers and ${requests.orders.length} of ${requests.count} requests.</p>`);
    }
    for (const o of offers.orders) book.asks.set(o.orderHash, toOrder(o));
    for (const o of requests.orders) book.bids.set(o.orderHash, toOrder(o));
    loaded = true;
    for (const [d, n] of pending.splice(0)) apply(d, n);
    redrawBook();
    // The API lists the last deals newest first (as iExec's does); the chart reads left to right.
    prices = ohlc.ohlc.slice().reverse();
    priceChart(document.getElementById('m-prices'), prices);
    document.getElementById('m-deals').innerHTML = dealTable(deals.deals, 'No deal in this category yet', 'market');
    for (const d of deals.deals) known.add(d.dealid);
    for (const d of pendingDeals.splice(0)) handlers.deal_created(d);
    document.getElementById('m-tasks').innerHTML = taskTable(tasks.tasks, 'No task in this category yet');
    view.dataset.ready = 'market';
  }

  async function dealsPage() {
    const my = token;
    handlers = { deal_created: (d) => prependDeal(view, d, 50) };
    const { deals, count } = await api('/deals', { pageSize: 50 });
    if (my !== token) return;
    shell(`<h1>Deals</h1><p class="sub">${count} deals on chain, newest first; new ones appear as they are made.</p><section class="panel">${dealTable(deals)}</section>`);
    view.dataset.ready = 'deals';
  }

  async function tasksPage() {
    const my = token;
    const load = async () => {
      const { tasks } = await api('/tasks', { pageSize: 100 });
      if (my === token) document.getElementById('t-list').innerHTML = taskTable(tasks);
    };
    const reload = debounce(load);
    handlers = { task_updated: (t) => { if (!updateTask(view, t)) reload(); }, deal_created: reload };
    shell('<h1>Tasks</h1><p class="sub">Tasks of the latest deals, with their status on chain as it changes.</p><section class="panel" id="t-list"></section>');
    await load();
    view.dataset.ready = 'tasks';
  }

  const KIND_PATH = { apporder: 'apporders', datasetorder: 'datasetorders', workerpoolorder: 'workerpoolorders', requestorder: 'requestorders' };
  const KIND_NAME = { apporder: 'App order', datasetorder: 'Dataset order', workerpoolorder: 'Workerpool order', requestorder: 'Request order' };

  /** The explanation of an order (GET /{kind}orders/{hash}/explain): one row per combination with counter-orders. */
  function whyTable(why, kind) {
    if (!why) return '<div class="empty">The explanation is unavailable</div>';
    const lead = why.matches
      ? '<p class="hint" id="o-why-lead">Nothing blocks the first combination: the engine matches it.</p>'
      : `<p class="hint" id="o-why-lead">${why.status === 'open' ? 'Open, and no combination matches:' : `This order is ${esc(why.status)}:`} what keeps it from each of its best counter-orders.</p>`;
    const member = (c, k) => (c[k] && k !== kind ? `<div>${esc(KIND_NAME[k])} ${hash(c[k].orderHash, 'order')} ${k === 'requestorder' ? 'pays at most' : 'at'} ${amount(c[k].price, { inline: true })}</div>` : '');
    const rows = why.combinations.map((c, i) => {
      const members = ['workerpoolorder', 'apporder', 'datasetorder', 'requestorder'].map((k) => member(c, k)).join('') || '<span class="muted">no counter-order</span>';
      const blockers = c.blockers.length
        ? `<ul class="why">${c.blockers.map((b) => `<li data-code="${esc(b.code)}"><code>${esc(b.code)}</code> ${esc(b.message)}</li>`).join('')}</ul>`
        : '<span class="muted">nothing: the engine matches it</span>';
      return `<tr data-combination="${i}"><td>${members}</td><td>${blockers}</td></tr>`;
    });
    return `${lead}${rows.length ? `<table class="why"><thead><tr><th>Counter-orders</th><th>Blocked by</th></tr></thead><tbody>${rows.join('')}</tbody></table>` : ''}`;
  }

  async function orderPage(h) {
    const my = token;
    const found = await api('/search', { q: h });
    if (my !== token) return;
    if (!found.type || !KIND_PATH[found.type]) return nothing(h);
    const kind = found.type;
    const load = async () => {
      const [o, props, deals, why] = await Promise.all([
        api(`/${KIND_PATH[kind]}/${h}`),
        api('/proposals', { orderHash: h }),
        api('/deals', { [`${kind}Hash`]: h, pageSize: 20 }),
        // The engine's own answer; the page still shows the order when it is unavailable.
        api(`/${KIND_PATH[kind]}/${h}/explain`).catch(() => null),
      ]);
      if (my !== token) return;
      const f = o.order;
      const price = f.appprice ?? f.datasetprice ?? f.workerpoolprice ?? f.workerpoolmaxprice;
      const asset = kind === 'workerpoolorder' ? hash(f.workerpool, 'pool') : hash(f.app ?? f.dataset, 'address');
      const rows = [
        ['Status', `<span id="o-status">${badge(o.status)}</span>`],
        ['Tasks left', `<span id="o-remaining">${esc(o.remaining)}</span> of ${esc(f.volume)}`],
        [kind === 'requestorder' ? 'Pays the pool at most' : 'Price per task', amount(price)],
        kind === 'requestorder' ? ['App / dataset at most', `${amount(f.appmaxprice, { inline: true })} / ${amount(f.datasetmaxprice, { inline: true })}`] : null,
        [kind === 'workerpoolorder' ? 'Workerpool' : kind === 'datasetorder' ? 'Dataset' : 'App', kind === 'datasetorder' ? hash(f.dataset, 'address') : asset],
        kind === 'requestorder' ? ['Requester', hash(f.requester, 'address')] : null,
        kind === 'requestorder' ? ['Workerpool', addr(f.workerpool)] : null,
        f.category !== undefined ? ['Category', catName(f.category)] : null,
        f.trust !== undefined ? ['Trust', esc(f.trust)] : null,
        ['Tag', `<code>${esc(f.tag)}</code>`],
        f.params !== undefined ? ['Params', `<pre>${esc(f.params)}</pre>`] : null,
        ['Signer', hash(o.signer, 'address')],
        ['Published', ago(o.publicationTimestamp)],
      ].filter(Boolean);
      shell(`<div class="crumbs">${esc(KIND_NAME[kind])}</div><h1 class="title-hash">${esc(h)} <button class="copy" data-copy="${esc(h)}" title="Copy">${COPY_ICON}</button></h1>
        <div class="grid" style="margin-top:1rem">
          <section class="panel span-6"><dl class="kv">${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl></section>
          <section class="panel span-6"><header><h2>Proposals</h2><span class="hint">the engine's matches and their settlement</span></header>
            ${props.proposals.length ? `<table><thead><tr><th>#</th><th class="num">Tasks</th><th>Status</th><th>Deal</th></tr></thead><tbody>${props.proposals.map((p) => `<tr><td>${esc(p.id)}</td><td class="num">${esc(p.volume)}</td><td>${badge(p.status)}${p.reason ? `<div class="muted">${esc(p.reason)}</div>` : ''}</td><td>${hash(p.dealid, 'deal')}</td></tr>`).join('')}</tbody></table>` : '<div class="empty">Not matched yet</div>'}
          </section>
          <section class="panel span-12"><header><h2>Deals with this order</h2></header><div id="o-deals">${dealTable(deals.deals, 'No deal with this order yet')}</div></section>
          <section class="panel span-12" id="o-why"><header><h2>Why not matched</h2><span class="hint">the engine's rules: the best counter-orders and what blocks each</span></header>${whyTable(why, kind)}</section>
        </div>`);
      view.dataset.ready = 'order';
    };
    const reload = debounce(load);
    handlers = {
      order_updated: (o) => { if (o.orderHash === h) reload(); },
      order_unpublished: (x) => { if (x === h) reload(); },
      deal_created: (d) => { if ([d.appHash, d.datasetHash, d.workerpoolHash, d.requestHash].includes(h)) reload(); },
    };
    await load();
  }

  async function dealPage(id) {
    const my = token;
    handlers = { task_updated: (t) => { if (t.dealid === id) updateTask(view, t); } };
    const d = await api(`/deals/${id}`);
    if (my !== token) return;
    const per = dealPrice(d);
    const rows = [
      ['Category', catName(d.category)],
      ['Tasks', esc(d.volume)],
      ['Price per task', amount(per)],
      ['Total', amount(per * big(d.volume))],
      ['Requester', hash(d.requester, 'address')],
      ['Beneficiary', hash(d.beneficiary, 'address')],
      ['App', `${hash(d.app?.pointer, 'address')} · ${amount(d.app?.price, { inline: true })}`],
      ['Dataset', d.dataset?.pointer && d.dataset.pointer !== ZERO_ADDRESS ? `${hash(d.dataset.pointer, 'address')} · ${amount(d.dataset.price, { inline: true })}` : '<span class="muted">none</span>'],
      ['Workerpool', `${hash(d.workerpool?.pointer, 'pool')} · ${amount(d.workerpool?.price, { inline: true })}`],
      ['Trust', esc(d.trust)],
      ['Tag', `<code>${esc(d.tag)}</code>`],
      ['Params', `<pre>${esc(d.params || '—')}</pre>`],
      ['Block', `${esc(d.blockNumber)} · ${ago(d.blockTimestamp)}`],
      ['Transaction', hash(d.transactionHash)],
    ];
    const orders = [['App order', d.appHash], ['Dataset order', d.datasetHash], ['Workerpool order', d.workerpoolHash], ['Request', d.requestHash]]
      .filter(([, x]) => x && !/^0x0+$/.test(x));
    const counts = Object.fromEntries(STATUSES.map((s) => [s, d.tasks.filter((t) => t.status === s).length]));
    shell(`<div class="crumbs">Deal</div><h1 class="title-hash">${esc(d.dealid)} <button class="copy" data-copy="${esc(d.dealid)}" title="Copy">${COPY_ICON}</button></h1>
      <div class="grid" style="margin-top:1rem">
        <section class="panel span-7"><dl class="kv">${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl></section>
        <section class="panel span-5"><header><h2>Orders</h2></header><dl class="kv">${orders.map(([k, v]) => `<dt>${k}</dt><dd>${hash(v, 'order')}</dd>`).join('')}</dl>
          <header style="margin-top:1rem"><h2>Tasks by status</h2></header><div>${STATUSES.filter((s) => counts[s]).map((s) => `${badge(s)} ${counts[s]}`).join(' &nbsp; ') || '—'}</div></section>
        <section class="panel span-12"><header><h2>Tasks</h2><span class="hint">live</span></header>
          <div class="scroll"><table class="tasks"><thead><tr><th class="num">Index</th><th>Task</th><th>Status</th><th>Last event</th><th class="num">Block</th><th>Result</th></tr></thead><tbody>
          ${d.tasks.map((t) => `<tr data-task="${esc(t.taskid)}" data-status="${esc(t.status)}"><td class="num">${esc(t.idx)}</td><td>${hash(t.taskid, 'task')}</td><td class="status">${badge(t.status)}</td><td class="event">${esc(t.lastEvent || '—')}</td><td class="num block">${esc(t.blockNumber ?? '—')}</td><td class="result">${bytesText(t.results)}</td></tr>`).join('') || '<tr><td colspan="6" class="empty">No task listed</td></tr>'}
          </tbody></table></div></section>
      </div>`);
    // A finished task's result comes with its deal: read it again once a task completes.
    const reload = debounce(() => { if (my === token) dealPage(id); }, 300);
    handlers = {
      task_updated: (t) => {
        if (t.dealid !== id) return;
        updateTask(view, t);
        if (t.status === 'COMPLETED') reload();
      },
    };
    view.dataset.ready = 'deal';
  }

  async function taskPage(id) {
    const my = token;
    const load = async () => {
      const t = await api(`/tasks/${id}`);
      if (my !== token) return;
      shell(`<div class="crumbs">Task ${esc(t.idx)} of deal ${hash(t.dealid, 'deal')}</div><h1 class="title-hash">${esc(t.taskid)} <button class="copy" data-copy="${esc(t.taskid)}" title="Copy">${COPY_ICON}</button></h1>
        <div class="grid" style="margin-top:1rem">
          <section class="panel span-6"><dl class="kv">
            <dt>Status</dt><dd>${badge(t.status)}</dd><dt>Deal</dt><dd>${hash(t.dealid, 'deal')}</dd>
            <dt>Category</dt><dd>${catName(t.category)}</dd><dt>Workerpool</dt><dd>${hash(t.workerpool, 'pool')}</dd>
            <dt>Result</dt><dd>${bytesText(t.results)}</dd></dl></section>
          <section class="panel span-6"><header><h2>History</h2><span class="hint">the hub's events</span></header>
            ${t.events.length ? `<table><thead><tr><th>Event</th><th class="num">Block</th></tr></thead><tbody>${t.events.map((e) => `<tr><td>${esc(e.event)}</td><td class="num">${esc(e.blockNumber)}</td></tr>`).join('')}</tbody></table>` : '<div class="empty">Not initialized yet</div>'}</section>
        </div>`);
      view.dataset.ready = 'task';
    };
    const reload = debounce(load);
    handlers = { task_updated: (t) => { if (t.taskid === id) reload(); } };
    await load();
  }

  // A workerpool's track record (docs/track-records.md): each figure in a cell carrying its raw value (data-v),
  // all time and over the last 30 days of chain time.
  const secondsText = (s) => (s === null ? '—' : s < 120 ? `${s} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);
  function trackRecordPanel(r) {
    const cols = [
      ['deals', 'Deals', esc], ['tasks', 'Tasks', esc], ['completed', 'Completed', esc], ['claimed', 'Claimed', esc],
      ['failed', 'Failed', esc], ['finished', 'Finished', esc], ['completedRate', 'Completed %', (v) => (v === null ? '—' : `${(v * 100).toFixed(1)}%`)],
      ['medianSecondsToFinalize', 'Median deal → finalize', secondsText],
    ];
    const row = (key, name) => `<tr data-window="${key}"><th>${name}</th>${cols.map(([k, , f]) => `<td class="num" data-k="${k}" data-v="${esc(r[key][k] ?? '')}">${f(r[key][k])}</td>`).join('')}</tr>`;
    const asOf = r.asOf ? `as of block ${esc(r.asOf.blockNumber)}, ${esc(r.asOf.blockTimestamp)}` : 'nothing synced yet';
    return `<section class="panel span-12"><header><h2>Track record</h2><span class="hint">from chain events only · ${asOf}</span></header>
      <table id="track-record"><thead><tr><th></th>${cols.map(([, n]) => `<th class="num">${n}</th>`).join('')}</tr></thead>
      <tbody>${row('allTime', 'All time')}${row('last30Days', 'Last 30 days')}</tbody></table></section>`;
  }

  async function poolPage(a) {
    const my = token;
    const load = async () => {
      const [p, record, orders, deals, tasks] = await Promise.all([
        api(`/pools/${a}`),
        api(`/workerpools/${a}`),
        api('/workerpoolorders', { workerpool: a, app: 'any', dataset: 'any', requester: 'any', pageSize: 50 }),
        api('/deals', { workerpool: a, pageSize: 20 }),
        api('/tasks', { workerpool: a, pageSize: 20 }),
      ]);
      if (my !== token) return;
      const rate = p.successRate;
      const finished = p.tasks.COMPLETED + p.tasks.FAILED;
      shell(`<div class="crumbs">Workerpool</div><h1 class="title-hash">${esc(p.workerpool)} <button class="copy" data-copy="${esc(p.workerpool)}" title="Copy">${COPY_ICON}</button></h1>
        <div class="stats" style="margin-top:1rem">
          <div class="stat"><div class="k">Success rate</div><div class="v" id="p-rate">${rate === null ? '—' : `${(rate * 100).toFixed(1)}%`}</div>
            <div class="bar" title="${p.tasks.COMPLETED} completed, ${p.tasks.FAILED} failed"><i style="width:${rate === null ? 0 : rate * 100}%"></i></div>
            <div class="muted" style="font-size:.78rem;margin-top:.25rem">${finished ? `${p.tasks.COMPLETED} of ${finished} finished tasks completed` : 'no finished task yet'}</div></div>
          <div class="stat"><div class="k">Deals</div><div class="v">${esc(p.deals)}</div></div>
          <div class="stat"><div class="k">Tasks sold</div><div class="v">${esc(p.volume)}</div></div>
          <div class="stat"><div class="k">Running</div><div class="v">${p.tasks.ACTIVE + p.tasks.REVEALING}</div></div>
          <div class="stat"><div class="k">Open orders</div><div class="v">${esc(orders.count)}</div></div>
        </div>
        <div class="grid">
          ${trackRecordPanel(record.trackRecord)}
          <section class="panel span-6"><header><h2>Open orders</h2></header>${orders.orders.length ? `<table><thead><tr><th>Order</th><th>Category</th><th class="num">Tasks left</th><th class="num">Price / task</th></tr></thead><tbody>${orders.orders.map((o) => `<tr data-order="${esc(o.orderHash)}"><td>${hash(o.orderHash, 'order')}</td><td>${catName(o.order.category)}</td><td class="num">${esc(o.remaining)}</td><td class="num">${amount(o.order.workerpoolprice)}</td></tr>`).join('')}</tbody></table>` : '<div class="empty">No open order</div>'}</section>
          <section class="panel span-6"><header><h2>Deals</h2></header>${dealTable(deals.deals, 'No deal yet', 'pool')}</section>
          <section class="panel span-12"><header><h2>Tasks</h2><span class="hint">live</span></header>${taskTable(tasks.tasks)}</section>
        </div>`);
      view.dataset.ready = 'pool';
    };
    const reload = debounce(load, 250);
    const mine = (o) => o?.order?.workerpool?.toLowerCase() === a.toLowerCase();
    handlers = {
      order_published: (o) => { if (mine(o)) reload(); },
      order_updated: (o) => { if (mine(o)) reload(); },
      order_unpublished: (h) => { if (view.querySelector(`tr[data-order="${CSS.escape(h)}"]`)) reload(); },
      deal_created: (d) => { if (d.workerpool?.pointer?.toLowerCase() === a.toLowerCase()) reload(); },
      task_updated: (t) => { if (!updateTask(view, t)) return; if (t.status === 'COMPLETED' || t.status === 'FAILED') reload(); },
    };
    await load();
  }

  async function addressPage(a) {
    const my = token;
    const [found, asRequester, asApp] = await Promise.all([
      api('/search', { q: a }),
      api('/deals', { requester: a, pageSize: 20 }),
      api('/deals', { app: a, pageSize: 20 }),
    ]);
    if (my !== token) return;
    const roles = Object.entries(found.roles || {});
    handlers = {
      deal_created: (d) => {
        const low = a.toLowerCase();
        if (d.requester?.toLowerCase() === low) prependDeal(document.getElementById('a-req'), d, 20);
        if (d.app?.pointer?.toLowerCase() === low) prependDeal(document.getElementById('a-app'), d, 20);
      },
    };
    shell(`<div class="crumbs">Address</div><h1 class="title-hash">${esc(found.id)} <button class="copy" data-copy="${esc(found.id)}" title="Copy">${COPY_ICON}</button></h1>
      <p class="sub">${roles.length ? roles.map(([k, n]) => `${esc(n)} ${esc(k === 'workerpool' || k === 'app' || k === 'dataset' || k === 'requester' ? `deal${n > 1 ? 's' : ''} as ${k}` : k)}`).join(' · ') : 'Nothing on this exchange yet.'}
      ${found.roles?.workerpool || found.roles?.workerpoolorders ? ` · <a href="#/pool/${esc(found.id)}">workerpool page →</a>` : ''}</p>
      <div class="grid">
        <section class="panel span-12"><header><h2>Deals as requester</h2></header><div id="a-req">${dealTable(asRequester.deals, 'None')}</div></section>
        <section class="panel span-12"><header><h2>Deals of this app</h2></header><div id="a-app">${dealTable(asApp.deals, 'None')}</div></section>
      </div>`);
    view.dataset.ready = 'address';
  }

  function nothing(q) {
    handlers = {};
    shell(`<h1>Nothing found</h1><p class="sub">No deal, task, order or participant on this exchange is known as <code>${esc(q)}</code>.</p>`);
    view.dataset.ready = 'nothing';
  }

  // ---------------------------------------------------------------------------------------------------------
  // Search and routing

  const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
  const HASH = /^0x[0-9a-fA-F]{64}$/;

  document.getElementById('search').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = document.getElementById('search-input');
    const q = input.value.trim();
    if (!ADDRESS.test(q) && !HASH.test(q)) {
      toast('Enter an address (0x + 40 hex digits) or a hash (0x + 64 hex digits)');
      return;
    }
    try {
      const r = await api('/search', { q });
      if (r.type === 'address') location.hash = r.roles?.workerpool || r.roles?.workerpoolorders ? `#/pool/${r.id}` : `#/address/${r.id}`;
      else if (r.type === 'deal') location.hash = `#/deal/${r.id}`;
      else if (r.type === 'task') location.hash = `#/task/${r.id}`;
      else if (r.type) location.hash = `#/order/${r.id}`;
      else location.hash = `#/search/${q}`;
      input.value = '';
    } catch (err) {
      toast(err.message);
    }
  });

  async function route() {
    token += 1;
    delete view.dataset.ready;
    handlers = {};
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    const [page, arg] = parts;
    document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('on', a.dataset.nav === (page || 'market') || (page === 'market' && a.dataset.nav === 'market')));
    try {
      if (!page || page === 'market') await market(arg === undefined ? undefined : Number(arg));
      else if (page === 'deals') await dealsPage();
      else if (page === 'tasks') await tasksPage();
      else if (page === 'deal' && HASH.test(arg)) await dealPage(arg);
      else if (page === 'task' && HASH.test(arg)) await taskPage(arg);
      else if (page === 'order' && HASH.test(arg)) await orderPage(arg);
      else if (page === 'pool' && ADDRESS.test(arg)) await poolPage(arg);
      else if (page === 'address' && ADDRESS.test(arg)) await addressPage(arg);
      else nothing(decodeURIComponent(arg || page));
      window.scrollTo(0, 0);
    } catch (err) {
      failed(err);
    }
  }

  window.addEventListener('hashchange', route);
  window.addEventListener('resize', debounce(() => { if (view.dataset.ready === 'market') route(); }, 400));
  document.getElementById('chain-id').textContent = String(CHAIN);
  (async () => {
    connect();
    try {
      categories = (await api('/categories', { pageSize: 1000 })).categories;
    } catch (err) {
      console.warn('categories', err);
    }
    await route();
  })();
})();
