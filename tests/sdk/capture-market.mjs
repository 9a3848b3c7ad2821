// A stand-in for the market API that records every request the SDK makes (method, URL, headers, body) as JSON
// lines, and answers in the shape iexec-market-api answers. It is a capture tool for SDK-HTTP.md and a way to
// run flows.mjs before Dragon's server is there: it checks signatures of challenges only, filters orderbooks
// only by their main resource, and knows no deals. Not a reference for how Dragon must behave.
//
// Usage: node capture-market.mjs --port 0 --hub 0x.. --chain-id 31337 --log requests.jsonl
// Prints `listening <port>` on stdout once ready.
import { createServer } from 'node:http';
import { appendFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { TypedDataEncoder, verifyTypedData, getAddress } from 'ethers';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const hub = args.hub;
const chainId = Number(args['chain-id'] ?? 31337);
const log = args.log;

const ORDER_TYPES = {
  apporders: { AppOrder: [
    ['address', 'app'], ['uint256', 'appprice'], ['uint256', 'volume'], ['bytes32', 'tag'],
    ['address', 'datasetrestrict'], ['address', 'workerpoolrestrict'], ['address', 'requesterrestrict'], ['bytes32', 'salt']] },
  datasetorders: { DatasetOrder: [
    ['address', 'dataset'], ['uint256', 'datasetprice'], ['uint256', 'volume'], ['bytes32', 'tag'],
    ['address', 'apprestrict'], ['address', 'workerpoolrestrict'], ['address', 'requesterrestrict'], ['bytes32', 'salt']] },
  workerpoolorders: { WorkerpoolOrder: [
    ['address', 'workerpool'], ['uint256', 'workerpoolprice'], ['uint256', 'volume'], ['bytes32', 'tag'],
    ['uint256', 'category'], ['uint256', 'trust'], ['address', 'apprestrict'], ['address', 'datasetrestrict'],
    ['address', 'requesterrestrict'], ['bytes32', 'salt']] },
  requestorders: { RequestOrder: [
    ['address', 'app'], ['uint256', 'appmaxprice'], ['address', 'dataset'], ['uint256', 'datasetmaxprice'],
    ['address', 'workerpool'], ['uint256', 'workerpoolmaxprice'], ['address', 'requester'], ['uint256', 'volume'],
    ['bytes32', 'tag'], ['uint256', 'category'], ['uint256', 'trust'], ['address', 'beneficiary'],
    ['address', 'callback'], ['string', 'params'], ['bytes32', 'salt']] },
};
const RESOURCE = { apporders: 'app', datasetorders: 'dataset', workerpoolorders: 'workerpool', requestorders: 'requester' };
const NUMERIC = ['appprice', 'datasetprice', 'workerpoolprice', 'appmaxprice', 'datasetmaxprice', 'workerpoolmaxprice', 'volume', 'category', 'trust'];

const challenges = new Map(); // hash -> {address, typedData}
const books = { apporders: [], datasetorders: [], workerpoolorders: [], requestorders: [] };

function orderHash(kind, order) {
  const [[name, fields]] = Object.entries(ORDER_TYPES[kind]);
  const types = { [name]: fields.map(([type, n]) => ({ name: n, type })) };
  const value = Object.fromEntries(fields.map(([, n]) => [n, order[n]]));
  return TypedDataEncoder.hash({ name: 'iExecODB', version: '5.0.0', chainId, verifyingContract: hub }, types, value);
}

function challengeTypedData(value) {
  return {
    types: {
      EIP712Domain: [
        { name: 'name', type: 'string' },
        { name: 'version', type: 'string' },
        { name: 'chainId', type: 'uint256' },
      ],
      Challenge: [{ name: 'challenge', type: 'string' }],
    },
    domain: { name: 'iExec Gateway', version: '1', chainId },
    primaryType: 'Challenge',
    message: { challenge: `Sign this message to log into iExec Gateway: ${value}` },
  };
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function authenticate(req) {
  const auth = req.headers.authorization;
  if (!auth) throw new HttpError(403, 'invalid authorization');
  const [hash, sign, address] = auth.split('_');
  const c = challenges.get(hash);
  if (!c || c.address.toLowerCase() !== address.toLowerCase()) throw new HttpError(403, 'invalid authorization');
  const { EIP712Domain, ...types } = c.typedData.types;
  const signer = verifyTypedData(c.typedData.domain, types, c.typedData.message, sign);
  if (signer.toLowerCase() !== address.toLowerCase()) throw new HttpError(403, 'invalid authorization');
  challenges.delete(hash);
  return getAddress(address);
}

function record(kind, order, signer) {
  const numeric = Object.fromEntries(
    Object.entries(order).map(([k, v]) => [k, NUMERIC.includes(k) ? Number(v) : v]),
  );
  return {
    orderHash: orderHash(kind, order),
    chainId,
    order: numeric,
    remaining: Number(order.volume),
    status: 'open',
    publicationTimestamp: new Date().toISOString(),
    signer,
  };
}

function handle(req, url, body) {
  const path = url.pathname;
  const q = Object.fromEntries(url.searchParams);
  if (req.method === 'GET' && path === '/version') return { ok: true, version: 'capture' };
  if (req.method === 'GET' && path === '/challenge') {
    const typedData = challengeTypedData(randomBytes(12).toString('hex'));
    const { EIP712Domain, ...types } = typedData.types;
    challenges.set(TypedDataEncoder.hash(typedData.domain, types, typedData.message), { address: q.address, typedData });
    return { ok: true, data: typedData };
  }
  if (req.method === 'GET' && path === '/deals') return { ok: true, deals: [], count: 0 };
  const m = path.match(/^\/(apporders|datasetorders|workerpoolorders|requestorders)(?:\/(0x[0-9a-fA-F]{64}))?$/);
  if (!m) throw new HttpError(404, `no route ${req.method} ${path}`);
  const [, kind, hash] = m;
  const book = books[kind];
  if (req.method === 'GET' && hash) {
    const r = book.find((o) => o.orderHash === hash.toLowerCase());
    if (!r) throw new HttpError(404, `${kind.slice(0, -1)} not found`);
    return { ok: true, ...r };
  }
  if (req.method === 'GET') {
    const field = kind === 'requestorders' ? 'requester' : RESOURCE[kind];
    const key = q[field];
    const open = book.filter((o) => o.status === 'open' && (!key || key === 'any' || o.order[field].toLowerCase() === key.toLowerCase()));
    const size = Number(q.pageSize ?? 20);
    const index = Number(q.pageIndex ?? 0);
    const orders = open.slice(index * size, index * size + size);
    return { ok: true, orders, count: open.length, ...(orders.length === size && { nextPage: (index + 1) * size }) };
  }
  const signer = authenticate(req);
  if (req.method === 'POST') {
    const r = record(kind, body.order, signer);
    book.push(r);
    return { ok: true, published: r };
  }
  if (req.method === 'PUT') {
    const mine = book.filter((o) => o.status === 'open' && o.signer === signer);
    let targets;
    if (body.target === 'unpublish_orderHash') targets = mine.filter((o) => o.orderHash === body.orderHash);
    else {
      const res = body[RESOURCE[kind]].toLowerCase();
      const ofResource = mine.filter((o) => o.order[RESOURCE[kind]].toLowerCase() === res);
      targets = body.target === 'unpublish_last' ? ofResource.slice(-1) : ofResource;
    }
    if (targets.length === 0) throw new HttpError(404, 'no open order to unpublish');
    for (const t of targets) t.status = 'canceled';
    return { ok: true, unpublished: targets.map((t) => t.orderHash) };
  }
  throw new HttpError(404, `no route ${req.method} ${path}`);
}

const server = createServer((req, res) => {
  let text = '';
  req.on('data', (d) => {
    text += d;
  });
  req.on('end', () => {
    const url = new URL(req.url, 'http://localhost');
    let status = 200;
    let answer;
    try {
      answer = handle(req, url, text ? JSON.parse(text) : undefined);
    } catch (e) {
      status = e.status ?? 500;
      answer = { ok: false, error: e.message };
    }
    if (log) {
      const { host, connection, 'user-agent': ua, 'accept-encoding': ae, 'accept-language': al, 'sec-fetch-mode': sf, ...headers } = req.headers;
      appendFileSync(log, `${JSON.stringify({ method: req.method, url: req.url, headers, body: text || undefined, status, answer })}\n`);
    }
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(answer));
  });
});
server.listen(Number(args.port ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
