// iExec's own JavaScript SDK (npm `iexec`), driven against Dragon's hub and market API, one flow per run.
//
// Input: one JSON object on stdin
//   {rpc, hub, api, chainId, keys: {appOwner, datasetOwner, poolOwner, requester, minter?}, flow, ...}
//   - `api` is the market API (the SDK's `iexecGatewayURL`); `hub` is Dragon's hub.
//   - `sdk`: 8 (default: `iexec@8.24.0` with `{isNative: false}`, standard orders with tag 0) or 9 (`iexec@9.0.1`,
//     which ORs TEE+TDX (0x..09) into every tag it signs).
//   - `assets: {app, dataset, workerpool}`: what `setup` printed (every flow but `setup` needs it).
//   Per-flow options are described above each flow below.
// Output: one JSON object on stdout (bigints and BNs as decimal strings). Any SDK error: its message (and
// cause) on stderr, exit 1. A bad config: exit 2.
//
// See SDK-HTTP.md for the HTTP requests each SDK call makes.
import { IExec as IExec9, utils as utils9 } from 'iexec';
import { IExec as IExec8 } from 'iexec8';
import { Contract, JsonRpcProvider } from 'ethers';
import { createHash } from 'node:crypto';

const NULL_ADDRESS = '0x0000000000000000000000000000000000000000';
const NULL_TAG = '0x0000000000000000000000000000000000000000000000000000000000000000';
const TEE_TAG = '0x0000000000000000000000000000000000000000000000000000000000000001';
const KINDS = ['apporder', 'datasetorder', 'workerpoolorder', 'requestorder'];

class ConfigError extends Error {}

let cfg = {};

// ---- SDK instances -------------------------------------------------------------------------------------------

// A signer for `key` on a provider that never caches RPC answers: ethers caches them for 250 ms, and
// back-to-back transactions from one account on anvil (which mines at once) otherwise fail with "nonce too low".
function signer(key) {
  const provider = new JsonRpcProvider(cfg.rpc, undefined, { cacheTimeout: -1 });
  return utils9.getSignerFromPrivateKey(cfg.rpc, key).connect(provider);
}

const sdkCache = new Map();
function sdk(role, version = Number(cfg.sdk ?? 8)) {
  const key = cfg.keys?.[role];
  if (!key) throw new ConfigError(`config: missing \`keys.${role}\``);
  const id = `${role}/${version}`;
  if (!sdkCache.has(id)) {
    const options = { hubAddress: cfg.hub, iexecGatewayURL: cfg.api };
    const iexec =
      version === 8
        ? new IExec8({ ethProvider: signer(key) }, { ...options, isNative: false })
        : new IExec9({ ethProvider: signer(key) }, options);
    sdkCache.set(id, iexec);
  }
  return sdkCache.get(id);
}

async function address(role) {
  return sdk(role).wallet.getAddress();
}

function assets() {
  const a = cfg.assets;
  if (!a?.app || !a?.workerpool) throw new ConfigError('config: missing `assets` ({app, dataset, workerpool}, from `setup`)');
  return a;
}

// ---- orders --------------------------------------------------------------------------------------------------

const ROLE = { apporder: 'appOwner', datasetorder: 'datasetOwner', workerpoolorder: 'poolOwner', requestorder: 'requester' };
const NAME = { apporder: 'Apporder', datasetorder: 'Datasetorder', workerpoolorder: 'Workerpoolorder', requestorder: 'Requestorder' };

// Default order fields per kind; `overrides` (from the config) win.
async function defaults(kind) {
  const a = assets();
  switch (kind) {
    case 'apporder':
      return { app: a.app, appprice: '1', volume: '10' };
    case 'datasetorder':
      return { dataset: a.dataset, datasetprice: '1', volume: '10' };
    case 'workerpoolorder':
      return { workerpool: a.workerpool, workerpoolprice: '1', volume: '10', category: '0', trust: '0' };
    case 'requestorder':
      return {
        app: a.app,
        appmaxprice: '1',
        workerpoolmaxprice: '1',
        category: '0',
        volume: '5',
        requester: await address('requester'),
        params: { iexec_args: 'dragon sdk flow' },
      };
    default:
      throw new ConfigError(`unknown order kind ${kind}`);
  }
}

// Creates, signs (with the SDK, preflight off: there is no SMS) and returns a signed order of `kind`.
async function signed(kind, overrides = {}) {
  const iexec = sdk(ROLE[kind]);
  const created = await iexec.order[`create${NAME[kind]}`]({ ...(await defaults(kind)), ...overrides });
  // signWorkerpoolorder takes no options; the others run an SMS/chain preflight unless told not to.
  return iexec.order[`sign${NAME[kind]}`](created, { preflightCheck: false });
}

// Publishes a signed order; checks that the hash the API answers is the one the SDK computes locally.
async function publish(kind, order) {
  const iexec = sdk(ROLE[kind]);
  const local = await iexec.order[`hash${NAME[kind]}`](order);
  const published = await iexec.order[`publish${NAME[kind]}`](order, { preflightCheck: false });
  if (published !== local) throw new Error(`${kind}: the API answered hash ${published}, the SDK computes ${local}`);
  return published;
}

// ---- flows ---------------------------------------------------------------------------------------------------

// setup: deploys an app (appOwner), a dataset (datasetOwner) and a workerpool (poolOwner), mints test RLC to the
// requester and the pool owner with `keys.minter` (the deployer of Dragon's test RLC: only it mints), and
// deposits them into the hub's escrow.
// Options: `deposit` (nRLC, default 1000 RLC), `name` (suffix of the asset names; default: the time, so that a
// second setup on the same chain deploys new assets).
// Output: {chainId, addresses: {role: address}, token, app, dataset, workerpool, txHashes, balances: {role:
// {stake, locked}}}.
async function setup() {
  const suffix = cfg.name ?? `${Date.now()}`;
  const amount = BigInt(cfg.deposit ?? 1000n * 10n ** 9n);
  const roles = ['appOwner', 'datasetOwner', 'poolOwner', 'requester'];
  const addresses = {};
  for (const r of roles) addresses[r] = await address(r);

  const app = await sdk('appOwner').app.deployApp({
    owner: addresses.appOwner,
    name: `dragon-sdk-app-${suffix}`,
    type: 'DOCKER',
    multiaddr: 'docker.io/dragon/sdk-hello:1.0.0',
    checksum: `0x${'11'.repeat(32)}`,
  });
  const dataset = await sdk('datasetOwner').dataset.deployDataset({
    owner: addresses.datasetOwner,
    name: `dragon-sdk-dataset-${suffix}`,
    multiaddr: '/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ',
    checksum: `0x${'22'.repeat(32)}`,
  });
  const workerpool = await sdk('poolOwner').workerpool.deployWorkerpool({
    owner: addresses.poolOwner,
    description: `dragon-sdk-pool-${suffix}`,
  });

  // Dragon's test RLC (contracts/src/RLC.sol) is minted by its deployer only.
  const minterKey = cfg.keys?.minter;
  if (!minterKey) throw new ConfigError('config: missing `keys.minter` (the key that deployed Dragon, which mints RLC)');
  const minter = signer(minterKey);
  const hub = new Contract(cfg.hub, ['function token() view returns (address)'], minter);
  const token = await hub.token();
  const rlc = new Contract(token, ['function mint(address to, uint256 amount)'], minter);
  const deposits = {};
  const balances = {};
  for (const r of ['requester', 'poolOwner']) {
    await (await rlc.mint(addresses[r], amount)).wait();
    deposits[r] = (await sdk(r).account.deposit(amount.toString())).txHash;
  }
  for (const r of roles) balances[r] = await sdk(r).account.checkBalance(addresses[r]);
  return {
    chainId: cfg.chainId,
    addresses,
    token,
    app: app.address,
    dataset: dataset.address,
    workerpool: workerpool.address,
    txHashes: { app: app.txHash, dataset: dataset.txHash, workerpool: workerpool.txHash, deposits },
    balances,
  };
}

// publish: signs and publishes one order of each kind (SDK `sdk`), with default fields overridden by
// `orders: {apporder: {...}, datasetorder: {...}, workerpoolorder: {...}, requestorder: {...}}`; `kinds` limits
// the kinds (default all four, published in the order app, dataset, workerpool, request); `count` orders of each
// kind (default 1, each with a fresh salt). `orders.<kind>` may also be an array of overrides: one order per
// element, in that order (`count` is then ignored for that kind).
// Output: {sdk, apporder: {hash, order, hashes, orders}, datasetorder: ..., workerpoolorder: ..., requestorder:
// ...}: `order` is the first signed order exactly as the SDK posted it, `hash` its hash, `hashes` and `orders` all
// of them, in publication order.
async function publishFlow() {
  const out = { sdk: Number(cfg.sdk ?? 8) };
  for (const kind of cfg.kinds ?? KINDS) {
    const given = cfg.orders?.[kind];
    const overrides = Array.isArray(given) ? given : Array.from({ length: Number(cfg.count ?? 1) }, () => given);
    const hashes = [];
    const orders = [];
    for (const o of overrides) {
      const order = await signed(kind, o);
      hashes.push(await publish(kind, order));
      orders.push(order);
    }
    out[kind] = { hash: hashes[0], order: orders[0], hashes, orders };
  }
  return out;
}

// The default orderbook queries; `$app`, `$dataset`, `$workerpool`, `$appOwner`, `$datasetOwner`, `$poolOwner`,
// `$requester` stand for the assets and the addresses of the keys.
const DEFAULT_QUERIES = [
  // app orders
  ['app', 'app', { app: '$app' }],
  ['app.owner', 'app', { appOwner: '$appOwner' }],
  ['app.any', 'app', { app: '$app', dataset: 'any', workerpool: 'any', requester: 'any' }],
  ['app.workerpool', 'app', { app: '$app', workerpool: '$workerpool' }],
  ['app.workerpoolStrict', 'app', { app: '$app', workerpool: '$workerpool', isWorkerpoolStrict: true }],
  ['app.requester', 'app', { app: '$app', requester: '$requester' }],
  ['app.requesterStrict', 'app', { app: '$app', requester: '$requester', isRequesterStrict: true }],
  ['app.datasetStrict', 'app', { app: '$app', dataset: '$dataset', isDatasetStrict: true }],
  ['app.minVolume', 'app', { app: '$app', minVolume: 1000000 }],
  ['app.minTagTee', 'app', { app: '$app', minTag: TEE_TAG }],
  ['app.maxTagNone', 'app', { app: '$app', maxTag: NULL_TAG }],
  ['app.pages', 'app', { app: '$app', pageSize: 10 }, { followMore: true }],
  // dataset orders
  ['dataset', 'dataset', { dataset: '$dataset' }],
  ['dataset.owner', 'dataset', { datasetOwner: '$datasetOwner' }],
  ['dataset.app', 'dataset', { dataset: '$dataset', app: '$app' }],
  ['dataset.appStrict', 'dataset', { dataset: '$dataset', app: '$app', isAppStrict: true }],
  ['dataset.any', 'dataset', { dataset: '$dataset', app: 'any', workerpool: 'any', requester: 'any' }],
  ['dataset.minVolume', 'dataset', { dataset: '$dataset', minVolume: 1000000 }],
  ['dataset.bulkOnly', 'dataset', { dataset: '$dataset', bulkOnly: true }],
  // workerpool orders
  ['workerpool.category', 'workerpool', { category: 0 }],
  ['workerpool.otherCategory', 'workerpool', { category: 1 }],
  ['workerpool', 'workerpool', { workerpool: '$workerpool' }],
  ['workerpool.owner', 'workerpool', { workerpoolOwner: '$poolOwner' }],
  ['workerpool.app', 'workerpool', { workerpool: '$workerpool', app: '$app' }],
  ['workerpool.appStrict', 'workerpool', { workerpool: '$workerpool', app: '$app', isAppStrict: true }],
  ['workerpool.requesterAny', 'workerpool', { workerpool: '$workerpool', requester: 'any' }],
  ['workerpool.minTrust', 'workerpool', { workerpool: '$workerpool', minTrust: 5 }],
  ['workerpool.minTagTee', 'workerpool', { workerpool: '$workerpool', minTag: TEE_TAG }],
  ['workerpool.minVolume', 'workerpool', { workerpool: '$workerpool', minVolume: 1000000 }],
  // request orders
  ['request.category', 'request', { category: 0 }],
  ['request.requester', 'request', { requester: '$requester' }],
  ['request.app', 'request', { app: '$app' }],
  ['request.workerpoolAny', 'request', { requester: '$requester', workerpool: 'any' }],
  ['request.workerpoolStrict', 'request', { requester: '$requester', workerpool: '$workerpool', isWorkerpoolStrict: true }],
  ['request.maxTrust0', 'request', { requester: '$requester', maxTrust: 0 }],
  ['request.maxTagNone', 'request', { requester: '$requester', maxTag: NULL_TAG }],
  ['request.minVolume', 'request', { requester: '$requester', minVolume: 1000000 }],
];

async function substitute(options) {
  const a = assets();
  const values = {
    $app: a.app,
    $dataset: a.dataset,
    $workerpool: a.workerpool,
    $appOwner: await address('appOwner'),
    $datasetOwner: await address('datasetOwner'),
    $poolOwner: await address('poolOwner'),
    $requester: await address('requester'),
  };
  return Object.fromEntries(Object.entries(options).map(([k, v]) => [k, values[v] ?? v]));
}

// The JavaScript type of each field of a published order record, and of its `order`'s fields.
function typesOf(record) {
  if (!record) return null;
  const types = Object.fromEntries(Object.entries(record).map(([k, v]) => [k, typeof v]));
  if (record.order) types.order = Object.fromEntries(Object.entries(record.order).map(([k, v]) => [k, typeof v]));
  return types;
}

// orderbook: runs orderbook queries as the requester. `queries: [[name, kind, options, {followMore}]]` replaces
// the default list (kind: app | dataset | workerpool | request); `extraQueries` adds to it.
// Output: {queries: {name: {kind, options, count, hashes, more, types}}}: `hashes` are the orderHash of the
// page in the order the API sent them (every page when followMore), `more` whether the SDK offered `more()`,
// `types` the JS types of the first record's fields.
async function orderbook() {
  const iexec = sdk('requester');
  const queries = [...(cfg.queries ?? DEFAULT_QUERIES), ...(cfg.extraQueries ?? [])];
  const out = {};
  for (const [name, kind, rawOptions, { followMore = false } = {}] of queries) {
    const options = await substitute(rawOptions);
    const method = `fetch${kind[0].toUpperCase()}${kind.slice(1)}Orderbook`;
    if (typeof iexec.orderbook[method] !== 'function') throw new ConfigError(`query ${name}: unknown kind ${kind}`);
    let page;
    try {
      page = await iexec.orderbook[method](options);
    } catch (e) {
      throw new Error(`query ${name} (${method} ${JSON.stringify(options)}): ${describe(e)}`);
    }
    const result = {
      kind,
      options,
      count: page.count,
      hashes: page.orders.map((o) => o.orderHash),
      more: typeof page.more === 'function',
      types: typesOf(page.orders[0]),
    };
    if (followMore) {
      result.pages = 1;
      while (typeof page.more === 'function' && result.pages < 100) {
        page = await page.more();
        result.pages += 1;
        result.hashes.push(...page.orders.map((o) => o.orderHash));
      }
    }
    out[name] = result;
  }
  return { queries: out };
}

// fetch: fetches orders by hash. `hashes: {apporder, datasetorder, workerpoolorder, requestorder}` (any subset).
// Output: {apporder: {record, types} | {error}, ...}: `record` is what the SDK returned (the API's object without
// `ok`), `error` the message the SDK threw (e.g. for an unpublished order, which the API no longer knows).
async function fetchFlow() {
  const iexec = sdk('requester');
  const hashes = cfg.hashes ?? {};
  if (Object.keys(hashes).length === 0) throw new ConfigError('config: missing `hashes` ({apporder, ...})');
  const out = {};
  for (const kind of KINDS) {
    if (!hashes[kind]) continue;
    try {
      const record = await iexec.orderbook[`fetch${NAME[kind]}`](hashes[kind]);
      out[kind] = { record, types: typesOf(record) };
    } catch (e) {
      out[kind] = { error: e.message };
    }
  }
  return out;
}

// unpublish: per kind (request, dataset, workerpool, app: app orders last, since a request order needs an open
// app order to be published), signs and publishes 3 fresh orders, then unpublishes the first by hash, then the
// last one (unpublishLast*), then all (unpublishAll*). Before the request orders it publishes one more app order
// (`support`), which unpublishAllApporders removes at the end.
// Then it calls unpublishLast* and unpublishAll* once more, with nothing left to unpublish.
// Output: {supportApporder, apporder: {published: [h1, h2, h3], byHash, last, all, again: {last, all}}, ...}:
// `byHash` and `last` are the hash the SDK returned, `all` the array it returned; `again.last` and `again.all`
// are what the second calls returned, or `{error: <message>}` when they threw.
async function unpublishFlow() {
  const a = assets();
  const out = {};
  const kinds = cfg.kinds ?? ['requestorder', 'datasetorder', 'workerpoolorder', 'apporder'];
  if (kinds.includes('requestorder')) {
    out.supportApporder = await publish('apporder', await signed('apporder'));
  }
  for (const kind of kinds) {
    const iexec = sdk(ROLE[kind]);
    const published = [];
    for (let i = 0; i < 3; i += 1) published.push(await publish(kind, await signed(kind, cfg.orders?.[kind])));
    const resource = { apporder: a.app, datasetorder: a.dataset, workerpoolorder: a.workerpool }[kind];
    const byHash = await iexec.order[`unpublish${NAME[kind]}`](published[0]);
    // unpublishLastRequestorder and unpublishAllRequestorders take no argument: the signer is the requester.
    const last = await iexec.order[`unpublishLast${NAME[kind]}`](...(resource ? [resource] : []));
    const all = await iexec.order[`unpublishAll${NAME[kind]}s`](...(resource ? [resource] : []));
    const again = {};
    for (const [key, method] of [['last', `unpublishLast${NAME[kind]}`], ['all', `unpublishAll${NAME[kind]}s`]]) {
      try {
        again[key] = (await iexec.order[method](...(resource ? [resource] : []))) ?? null;
      } catch (e) {
        again[key] = { error: describe(e) };
      }
    }
    out[kind] = { published, byHash, last, all, again };
  }
  return out;
}

// deals: what `iexec app run` does, then fetchRequesterDeals. The requester takes the first app order of
// `assets.app` and the first workerpool order of `assets.workerpool` (category `category`, default 0) from the
// market API, signs a volume-1 request order (never published) and calls matchOrders itself; then it polls
// fetchRequesterDeals until the new deal is listed (`timeoutMs`, default 30000; not listed by then: exit 1, unless
// `allowMissing: true`). With `match: false` it only fetches the requester's deals. `dealOptions` is passed to
// fetchRequesterDeals (`{appAddress, datasetAddress, workerpoolAddress, page, pageSize}`, `$app`... substituted);
// `byOrder: {apporder: hash, ...}` also calls fetchDealsByApporder(hash) etc.
// Output: {match: {dealid, volume, txHash, apporder, workerpoolorder, requestorder} | null, found, count, deals,
// more, types, byOrder: {apporder: {count, deals}, ...}}: `types` are the JS types of the first deal's fields.
async function deals() {
  const a = assets();
  const iexec = sdk('requester');
  const requester = await address('requester');
  let match = null;
  if (cfg.match !== false) {
    const category = cfg.category ?? 0;
    const apps = await iexec.orderbook.fetchAppOrderbook({ app: a.app, workerpool: a.workerpool });
    const pools = await iexec.orderbook.fetchWorkerpoolOrderbook({ workerpool: a.workerpool, category, app: a.app });
    if (!apps.orders[0]) throw new Error(`no app order of ${a.app} in the market`);
    if (!pools.orders[0]) throw new Error(`no workerpool order of ${a.workerpool} (category ${category}) in the market`);
    const apporder = apps.orders[0].order;
    const workerpoolorder = pools.orders[0].order;
    const requestorder = await signed('requestorder', {
      app: apporder.app,
      appmaxprice: apporder.appprice,
      workerpool: workerpoolorder.workerpool,
      workerpoolmaxprice: workerpoolorder.workerpoolprice,
      category: workerpoolorder.category,
      trust: workerpoolorder.trust,
      volume: '1',
    });
    const res = await iexec.order.matchOrders({ apporder, workerpoolorder, requestorder }, { preflightCheck: false });
    match = { ...res, apporder, workerpoolorder, requestorder };
  }
  const byOrder = {};
  for (const [kind, hash] of Object.entries(cfg.byOrder ?? {})) {
    if (!NAME[kind]) throw new ConfigError(`byOrder: unknown kind ${kind}`);
    byOrder[kind] = await iexec.deal[`fetchDealsBy${NAME[kind]}`](hash);
  }
  const dealOptions = await substitute(cfg.dealOptions ?? {});
  const deadline = Date.now() + Number(cfg.timeoutMs ?? 30000);
  for (;;) {
    const page = await iexec.deal.fetchRequesterDeals(requester, dealOptions);
    const found = match ? page.deals.some((d) => d.dealid === match.dealid) : true;
    if (!found && Date.now() > deadline && !cfg.allowMissing) {
      throw new Error(`deal ${match.dealid} not listed by fetchRequesterDeals after ${cfg.timeoutMs ?? 30000} ms`);
    }
    if (found || Date.now() > deadline) {
      const more = typeof page.more === 'function';
      return { match, found, count: page.count, deals: page.deals, more, types: typesOf(page.deals[0]), byOrder };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

// results: downloads a completed task's result archive with `task.fetchResults`, which reads `{storage, location}`
// from the task on chain and fetches `ipfsGatewayURL + location` (here, a Dragon pool serving its results).
// Options: `taskid`, `ipfsGatewayURL` (the pool's public URL).
// Output: {taskid, bytes, sha256 (hex), hex (the archive as downloaded)}.
async function results() {
  if (!cfg.taskid || !cfg.ipfsGatewayURL) throw new ConfigError('config: `results` needs `taskid` and `ipfsGatewayURL`');
  const key = cfg.keys?.requester;
  if (!key) throw new ConfigError('config: missing `keys.requester`');
  const options = { hubAddress: cfg.hub, iexecGatewayURL: cfg.api, ipfsGatewayURL: cfg.ipfsGatewayURL };
  const iexec =
    Number(cfg.sdk ?? 8) === 8
      ? new IExec8({ ethProvider: signer(key) }, { ...options, isNative: false })
      : new IExec9({ ethProvider: signer(key) }, options);
  const response = await iexec.task.fetchResults(cfg.taskid);
  const bytes = Buffer.from(await response.arrayBuffer());
  return {
    taskid: cfg.taskid,
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    hex: bytes.toString('hex'),
  };
}

// ---- main ----------------------------------------------------------------------------------------------------

const FLOWS = { setup, publish: publishFlow, orderbook, fetch: fetchFlow, unpublish: unpublishFlow, deals, results };

function describe(e) {
  let text = e?.message ?? String(e);
  for (let c = e?.cause; c; c = c.cause) text += ` (cause: ${c.message ?? c})`;
  return text;
}

function readStdin() {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => {
      text += d;
    });
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

// bigint and bn.js values (balances, volumes) as decimal strings (a BN's own toJSON would give hex).
function plain(value) {
  if (typeof value === 'bigint') return value.toString();
  if (value && typeof value === 'object') {
    if (Array.isArray(value.words) && typeof value.toArrayLike === 'function') return value.toString(10);
    if (Array.isArray(value)) return value.map(plain);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

try {
  try {
    cfg = JSON.parse(await readStdin());
  } catch (e) {
    throw new ConfigError(`config: stdin is not JSON: ${e.message}`);
  }
  for (const k of ['rpc', 'hub', 'api', 'flow']) if (!cfg[k]) throw new ConfigError(`config: missing \`${k}\``);
  const flow = FLOWS[cfg.flow];
  if (!flow) throw new ConfigError(`config: unknown flow \`${cfg.flow}\` (one of ${Object.keys(FLOWS).join(', ')})`);
  const result = await flow();
  process.stdout.write(`${JSON.stringify(plain(result))}\n`);
  process.exit(0);
} catch (e) {
  process.stderr.write(`flow ${cfg.flow} failed: ${describe(e)}\n`);
  process.exit(e instanceof ConfigError ? 2 : 1);
}
