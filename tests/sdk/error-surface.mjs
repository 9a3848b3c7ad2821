// How iExec's SDK (9) surfaces the market API's errors: a throwaway server answers each route with one kind of
// failure (status, content type, body), and each SDK call's outcome is printed, one line per case. The results
// are quoted in SDK-HTTP.md. The chain (rpc, hub) is only used to resolve the chain id.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { IExec, utils } from 'iexec';
import { JsonRpcProvider } from 'ethers';
// Config on stdin: the flows' config (rpc, hub, keys.requester, assets).
const cfg = JSON.parse(readFileSync(0, 'utf8'));
const routes = {
  '/apporders/': [404, 'application/json', { ok: false, error: 'apporder not found' }],
  '/datasetorders/': [200, 'application/json', { ok: false, error: 'hidden' }],
  '/workerpoolorders/': [500, 'application/json', { ok: false, error: 'boom' }],
  '/requestorders/': [404, 'text/plain', 'not found'],
  '/apporders': [200, 'application/json', { ok: false, error: 'hidden' }],
  '/datasetorders': [400, 'application/json', { ok: false, error: 'bad query' }],
  '/workerpoolorders': [200, 'text/html', '<html>'],
  '/requestorders': [403, 'application/json', { ok: false }],
  '/challenge': [403, 'application/json', { ok: false, error: 'no challenge for you' }],
  '/deals': [200, 'application/json', { ok: true, count: 0 }],
};
const server = createServer((req, res) => {
  const path = req.url.split('?')[0];
  const key = Object.keys(routes).filter((k) => (k.endsWith('/') ? path.startsWith(k) : path === k)).sort((a, b) => b.length - a.length)[0];
  const [status, type, body] = routes[key] ?? [404, 'application/json', { ok: false, error: 'no route' }];
  res.writeHead(status, { 'Content-Type': type });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const api = `http://127.0.0.1:${server.address().port}`;
const signer = utils.getSignerFromPrivateKey(cfg.rpc, cfg.keys.requester).connect(new JsonRpcProvider(cfg.rpc, undefined, { cacheTimeout: -1 }));
const iexec = new IExec({ ethProvider: signer }, { hubAddress: cfg.hub, iexecGatewayURL: api });
const h = '0x' + 'ab'.repeat(32);
const tries = {
  'fetchApporder (404 json)': () => iexec.orderbook.fetchApporder(h),
  'fetchDatasetorder (200 ok:false)': () => iexec.orderbook.fetchDatasetorder(h),
  'fetchWorkerpoolorder (500)': () => iexec.orderbook.fetchWorkerpoolorder(h),
  'fetchRequestorder (404 text)': () => iexec.orderbook.fetchRequestorder(h),
  'fetchAppOrderbook (200 ok:false)': () => iexec.orderbook.fetchAppOrderbook({ app: cfg.assets.app }),
  'fetchDatasetOrderbook (400 json)': () => iexec.orderbook.fetchDatasetOrderbook({ dataset: cfg.assets.dataset }),
  'fetchWorkerpoolOrderbook (200 html)': () => iexec.orderbook.fetchWorkerpoolOrderbook({}),
  'fetchRequestOrderbook (403 json without error)': () => iexec.orderbook.fetchRequestOrderbook({}),
  'unpublishLastRequestorder (challenge 403)': () => iexec.order.unpublishLastRequestorder(),
  'fetchRequesterDeals (200 no deals field)': async () => iexec.deal.fetchRequesterDeals(await signer.getAddress()),
  'network error': () => new IExec({ ethProvider: signer }, { hubAddress: cfg.hub, iexecGatewayURL: 'http://127.0.0.1:1' }).orderbook.fetchApporder(h),
};
for (const [name, f] of Object.entries(tries)) {
  try {
    const r = await f();
    console.log(`${name}: RESOLVED ${JSON.stringify(r)}`);
  } catch (e) {
    console.log(`${name}: ${e.constructor.name}: ${e.message}${e.cause ? ` [cause: ${e.cause.message}]` : ''}`);
  }
}
server.close();
