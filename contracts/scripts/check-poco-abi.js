#!/usr/bin/env node
// Checks that DragonHub's ABI is PoCo v5's hub interface, against the ABI iExec publishes in npm
// `@iexec/poco` (pinned in package.json): the hardhat artifacts of `IexecInterfaceToken` (the token-mode
// hub the SDK talks to) and `IexecInterfaceTokenABILegacy` (the legacy accessors iExec's Java middleware
// calls). Every function and event there must exist in DragonHub with the same canonical signature,
// the same outputs (clients decode them), the same indexed topics (log filters and decoders depend on
// them) and a compatible mutability, unless it is in EXCLUDED below.
// Usage: check-poco-abi.js [DragonHub artifact]
'use strict';
const fs = require('fs');
const path = require('path');

const POCO = path.join(__dirname, '..', 'node_modules', '@iexec', 'poco');
const PUBLISHED = [
  'artifacts/contracts/IexecInterfaceToken.sol/IexecInterfaceToken.json',
  'artifacts/contracts/IexecInterfaceTokenABILegacy.sol/IexecInterfaceTokenABILegacy.json',
];

const APP = '(address,uint256,uint256,bytes32,address,address,address,bytes32,bytes)';
const POOL = '(address,uint256,uint256,bytes32,uint256,uint256,address,address,address,bytes32,bytes)';
const REQ =
  '(address,uint256,address,uint256,address,uint256,address,uint256,bytes32,uint256,uint256,address,address,string,bytes32,bytes)';

// What Dragon deliberately does not provide. Each entry must still be in the published ABI and absent from
// DragonHub: a stale entry fails the check, so the list cannot hide a regression.
const EXCLUDED = new Map([
  // Administration of PoCo's proxy deployment: Dragon's hub is configured once by its constructor.
  ['function configure(address,string,string,uint8,address,address,address,address)', 'admin: constructor does it'],
  ['function setTeeBroker(address)', 'admin: no TEE broker on Dragon (teebroker() is zero)'],
  ['function setCallbackGas(uint256)', 'admin: callback gas is a constant'],
  ['function setName(address,string)', 'admin: ENS reverse names'],
  ['function importScore(address)', 'v3 -> v5 score migration: no v3 hub to import from'],
  // On-chain order broadcast: Dragon's order book is the exchange server, not event logs.
  [`function broadcastAppOrder(${APP})`, 'order book is off chain'],
  [`function broadcastDatasetOrder(${APP})`, 'order book is off chain'],
  [`function broadcastWorkerpoolOrder(${POOL})`, 'order book is off chain'],
  [`function broadcastRequestOrder(${REQ})`, 'order book is off chain'],
  [`event BroadcastAppOrder(${APP})`, 'order book is off chain'],
  [`event BroadcastDatasetOrder(${APP})`, 'order book is off chain'],
  [`event BroadcastWorkerpoolOrder(${POOL})`, 'order book is off chain'],
  [`event BroadcastRequestOrder(${REQ})`, 'order book is off chain'],
  // IexecEscrowTokenSwap: native-currency deposits swapped to RLC through Uniswap; Dragon is token mode only.
  ['function UniswapV2Router()', 'no Uniswap swap module'],
  ['function depositEth()', 'no Uniswap swap module'],
  ['function depositEthFor(address)', 'no Uniswap swap module'],
  ['function safeDepositEth(uint256)', 'no Uniswap swap module'],
  ['function safeDepositEthFor(uint256,address)', 'no Uniswap swap module'],
  ['function withdrawEth(uint256)', 'no Uniswap swap module'],
  ['function withdrawEthTo(uint256,address)', 'no Uniswap swap module'],
  ['function safeWithdrawEth(uint256,uint256)', 'no Uniswap swap module'],
  ['function safeWithdrawEthTo(uint256,uint256,address)', 'no Uniswap swap module'],
  ['function estimateDepositEthSent(uint256)', 'no Uniswap swap module'],
  ['function estimateDepositTokenWanted(uint256)', 'no Uniswap swap module'],
  ['function estimateWithdrawEthWanted(uint256)', 'no Uniswap swap module'],
  ['function estimateWithdrawTokenSent(uint256)', 'no Uniswap swap module'],
  ['function requestToken(uint256)', 'no Uniswap swap module'],
  ['function requestTokenFor(uint256,address)', 'no Uniswap swap module'],
  [`function matchOrdersWithEth(${APP},${APP},${POOL},${REQ})`, 'no Uniswap swap module'],
]);

function canon(p) {
  if (p.type.startsWith('tuple')) return `(${p.components.map(canon).join(',')})${p.type.slice(5)}`;
  return p.type;
}

function key(e) {
  return `${e.type} ${e.name}(${e.inputs.map(canon).join(',')})`;
}

// view and pure are both read-only calls for a client; what matters is read-only vs state-changing and
// whether value can be sent.
function mutabilityClass(m) {
  return m === 'view' || m === 'pure' ? 'read-only' : m;
}

function loadAbi(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8')).abi;
}

const published = [];
for (const rel of PUBLISHED) {
  const file = path.join(POCO, rel);
  if (!fs.existsSync(file)) {
    console.error(`${file} not found: run npm ci in contracts/ (@iexec/poco is a pinned devDependency)`);
    process.exit(1);
  }
  published.push(...loadAbi(file));
}
const pocoVersion = JSON.parse(fs.readFileSync(path.join(POCO, 'package.json'), 'utf8')).version;

const hubFile = process.argv[2] || path.join(__dirname, '..', 'artifacts', 'DragonHub.json');
const hub = new Map();
for (const e of loadAbi(hubFile)) if (e.type === 'function' || e.type === 'event') hub.set(key(e), e);

const problems = [];
const checked = new Set();
let functions = 0;
let events = 0;
for (const p of published) {
  // PoCo's proxy fallback/receive are not part of the interface a client calls by name.
  if (p.type !== 'function' && p.type !== 'event') continue;
  const k = key(p);
  if (checked.has(k)) continue;
  checked.add(k);
  const h = hub.get(k);
  if (EXCLUDED.has(k)) {
    if (h) problems.push(`${k} is implemented: remove it from EXCLUDED in check-poco-abi.js`);
    continue;
  }
  if (!h) {
    problems.push(`missing ${k}`);
    continue;
  }
  if (p.type === 'function') {
    ++functions;
    const want = p.outputs.map(canon).join(',');
    const got = h.outputs.map(canon).join(',');
    if (want !== got) problems.push(`${k} returns (${got}), PoCo returns (${want})`);
    if (mutabilityClass(p.stateMutability) !== mutabilityClass(h.stateMutability)) {
      problems.push(`${k} is ${h.stateMutability}, PoCo's is ${p.stateMutability}`);
    }
  } else {
    ++events;
    const want = p.inputs.map((i) => (i.indexed ? 'indexed ' : '') + canon(i)).join(',');
    const got = h.inputs.map((i) => (i.indexed ? 'indexed ' : '') + canon(i)).join(',');
    if (want !== got || !!p.anonymous !== !!h.anonymous) problems.push(`${k} is (${got}), PoCo's is (${want})`);
  }
}
for (const k of EXCLUDED.keys()) {
  if (!checked.has(k)) problems.push(`${k} is in EXCLUDED but not in @iexec/poco ${pocoVersion}'s ABI: remove it`);
}

if (problems.length) {
  console.error(`DragonHub ABI differs from @iexec/poco ${pocoVersion}'s hub interface:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `PoCo ABI check (@iexec/poco ${pocoVersion}): ${functions} functions and ${events} events match, ` +
    `${EXCLUDED.size} deliberately excluded`,
);
