#!/usr/bin/env node
// Checks that artifacts/DragonHub.json exposes PoCo v5's hub interface: every function and event
// signature below (written from iExec's published interfaces IexecPoco1/2, IexecOrderManagement,
// IexecEscrowToken, IexecERC20, IexecCategoryManager, IexecPocoAccessors, IexecAccessorsABILegacy,
// IexecConfiguration, IOwnable) must be present with the same canonical types.
// Not provided by Dragon (admin or v6-only): configure, importScore, setTeeBroker, setCallbackGas,
// changeRegistries, assertDatasetDealCompatibility.
'use strict';
const fs = require('fs');
const path = require('path');

const APP = '(address,uint256,uint256,bytes32,address,address,address,bytes32,bytes)';
const DATASET = APP;
const POOL = '(address,uint256,uint256,bytes32,uint256,uint256,address,address,address,bytes32,bytes)';
const REQ =
  '(address,uint256,address,uint256,address,uint256,address,uint256,bytes32,uint256,uint256,address,address,string,bytes32,bytes)';
const ORDERS = `${APP},${DATASET},${POOL},${REQ}`;

const functions = [
  // IexecPoco1
  'verifySignature(address,bytes32,bytes)',
  'verifyPresignature(address,bytes32)',
  'verifyPresignatureOrSignature(address,bytes32,bytes)',
  `matchOrders(${ORDERS})`,
  `sponsorMatchOrders(${ORDERS})`,
  // IexecPoco2
  'initialize(bytes32,uint256)',
  'claim(bytes32)',
  'contribute(bytes32,bytes32,bytes32,address,bytes,bytes)',
  'contributeAndFinalize(bytes32,bytes32,bytes,bytes,address,bytes,bytes)',
  'reveal(bytes32,bytes32)',
  'reopen(bytes32)',
  'finalize(bytes32,bytes,bytes)',
  'initializeArray(bytes32[],uint256[])',
  'claimArray(bytes32[])',
  'initializeAndClaimArray(bytes32[],uint256[])',
  // IexecOrderManagement
  `manageAppOrder((${APP},uint8,bytes))`,
  `manageDatasetOrder((${DATASET},uint8,bytes))`,
  `manageWorkerpoolOrder((${POOL},uint8,bytes))`,
  `manageRequestOrder((${REQ},uint8,bytes))`,
  // IexecEscrowToken + IexecTokenSpender
  'deposit(uint256)',
  'depositFor(uint256,address)',
  'depositForArray(uint256[],address[])',
  'withdraw(uint256)',
  'withdrawTo(uint256,address)',
  'recover()',
  'receiveApproval(address,uint256,address,bytes)',
  // IexecERC20
  'transfer(address,uint256)',
  'approve(address,uint256)',
  'transferFrom(address,address,uint256)',
  'increaseAllowance(address,uint256)',
  'decreaseAllowance(address,uint256)',
  'approveAndCall(address,uint256,bytes)',
  // IexecCategoryManager
  'createCategory(string,string,uint256)',
  // IexecPocoAccessors
  'viewDeal(bytes32)',
  'viewTask(bytes32)',
  `computeDealVolume(${ORDERS})`,
  'viewConsumed(bytes32)',
  'viewPresigned(bytes32)',
  'viewContribution(bytes32,address)',
  'viewScore(address)',
  'resultFor(bytes32)',
  'name()',
  'symbol()',
  'decimals()',
  'totalSupply()',
  'balanceOf(address)',
  'frozenOf(address)',
  'allowance(address,address)',
  'viewAccount(address)',
  'token()',
  'viewCategory(uint256)',
  'countCategory()',
  'appregistry()',
  'datasetregistry()',
  'workerpoolregistry()',
  'teebroker()',
  'callbackgas()',
  'viewDataset(address)',
  'viewApp(address)',
  'viewWorkerpool(address)',
  'contribution_deadline_ratio()',
  'reveal_deadline_ratio()',
  'final_deadline_ratio()',
  'workerpool_stake_ratio()',
  'kitty_ratio()',
  'kitty_min()',
  'kitty_address()',
  'groupmember_purpose()',
  'eip712domain_separator()',
  // IexecAccessorsABILegacy
  'viewAccountABILegacy(address)',
  'viewDealABILegacy_pt1(bytes32)',
  'viewDealABILegacy_pt2(bytes32)',
  'viewTaskABILegacy(bytes32)',
  'viewContributionABILegacy(bytes32,address)',
  'viewCategoryABILegacy(uint256)',
  'viewConfigABILegacy(bytes32)',
  // IexecConfiguration / IOwnable
  'domain()',
  'updateDomainSeparator()',
  'owner()',
  'renounceOwnership()',
  'transferOwnership(address)',
];

const events = [
  'Transfer(address,address,uint256)',
  'Approval(address,address,uint256)',
  'Reward(address,uint256,bytes32)',
  'Seize(address,uint256,bytes32)',
  'Lock(address,uint256)',
  'Unlock(address,uint256)',
  'CreateCategory(uint256,string,string,uint256)',
  'SignedAppOrder(bytes32)',
  'SignedDatasetOrder(bytes32)',
  'SignedWorkerpoolOrder(bytes32)',
  'SignedRequestOrder(bytes32)',
  'ClosedAppOrder(bytes32)',
  'ClosedDatasetOrder(bytes32)',
  'ClosedWorkerpoolOrder(bytes32)',
  'ClosedRequestOrder(bytes32)',
  'SchedulerNotice(address,bytes32)',
  'OrdersMatched(bytes32,bytes32,bytes32,bytes32,bytes32,uint256)',
  'DealSponsored(bytes32,address)',
  'AccurateContribution(address,bytes32)',
  'FaultyContribution(address,bytes32)',
  'TaskInitialize(bytes32,address)',
  'TaskContribute(bytes32,address,bytes32)',
  'TaskConsensus(bytes32,bytes32)',
  'TaskReveal(bytes32,address,bytes32)',
  'TaskReopen(bytes32)',
  'TaskFinalize(bytes32,bytes)',
  'TaskClaimed(bytes32)',
  'OwnershipTransferred(address,address)',
];

// Output shapes clients decode (viewDeal / viewTask / viewContribution / viewAccount / viewCategory).
const outputs = {
  'viewDeal(bytes32)':
    '((address,address,uint256),(address,address,uint256),(address,address,uint256),uint256,uint256,bytes32,address,address,address,string,uint256,uint256,uint256,uint256,uint256,address)',
  'viewTask(bytes32)':
    '(uint8,bytes32,uint256,uint256,uint256,uint256,uint256,bytes32,uint256,uint256,address[],bytes32,bytes,uint256,bytes)',
  'viewContribution(bytes32,address)': '(uint8,bytes32,bytes32,address,uint256)',
  'viewAccount(address)': '(uint256,uint256)',
  'viewCategory(uint256)': '(string,string,uint256)',
  'domain()': '(string,string,uint256,address)',
};

function canon(p) {
  if (p.type.startsWith('tuple')) return `(${p.components.map(canon).join(',')})${p.type.slice(5)}`;
  return p.type;
}

const file = process.argv[2] || path.join(__dirname, '..', 'artifacts', 'DragonHub.json');
const abi = JSON.parse(fs.readFileSync(file, 'utf8')).abi;
const have = new Map();
for (const e of abi) {
  if (e.type === 'function' || e.type === 'event') {
    have.set(`${e.type} ${e.name}(${e.inputs.map(canon).join(',')})`, e);
  }
}
const missing = [];
for (const f of functions) if (!have.has(`function ${f}`)) missing.push(`function ${f}`);
for (const e of events) if (!have.has(`event ${e}`)) missing.push(`event ${e}`);
for (const [f, out] of Object.entries(outputs)) {
  const e = have.get(`function ${f}`);
  const got = e && e.outputs.map(canon).join(',');
  if (e && got !== out) missing.push(`function ${f} returns ${out} (has ${got})`);
}
if (missing.length) {
  console.error('DragonHub ABI is not PoCo-compatible; missing or different:\n  ' + missing.join('\n  '));
  process.exit(1);
}
console.log(`PoCo ABI check: ${functions.length} functions and ${events.length} events present`);
