#!/usr/bin/env node
// Writes compact {"abi": [...], "bytecode": "0x..."} artifacts (readable by alloy's
// `sol!(Name, "path.json")`) from forge's out/ directory.
// Usage: extract-artifacts.js <forge out dir> <destination dir>
'use strict';
const fs = require('fs');
const path = require('path');

const [outDir, dest] = process.argv.slice(2);
if (!outDir || !dest) {
  console.error('usage: extract-artifacts.js <forge out dir> <destination dir>');
  process.exit(2);
}

function load(file, name) {
  const p = path.join(outDir, file, `${name}.json`);
  const j = JSON.parse(fs.readFileSync(p, 'utf8'));
  return { abi: j.abi, bytecode: j.bytecode.object };
}

// The hub serves the task module's functions through its fallback (delegatecall), so its ABI is the
// union of both (events and errors they share appear once; the module has no constructor of its own).
function mergedHub() {
  const hub = load('DragonHub.sol', 'DragonHub');
  const tasks = load('DragonTasks.sol', 'DragonTasks');
  const seen = new Set(hub.abi.map((e) => JSON.stringify(e)));
  for (const e of tasks.abi) {
    if (e.type === 'constructor') continue;
    const k = JSON.stringify(e);
    if (!seen.has(k)) {
      seen.add(k);
      hub.abi.push(e);
    }
  }
  return hub;
}

const artifacts = {
  RLC: load('RLC.sol', 'RLC'),
  AppRegistry: load('Apps.sol', 'AppRegistry'),
  DatasetRegistry: load('Datasets.sol', 'DatasetRegistry'),
  WorkerpoolRegistry: load('Workerpools.sol', 'WorkerpoolRegistry'),
  App: load('Apps.sol', 'App'),
  Dataset: load('Datasets.sol', 'Dataset'),
  Workerpool: load('Workerpools.sol', 'Workerpool'),
  DragonHub: mergedHub(),
  // The task module on its own: never deployed by clients (the hub's constructor does it), but its ABI is
  // what the Rust side decodes the module's custom errors with (src/chain/revert.rs).
  DragonTasks: load('DragonTasks.sol', 'DragonTasks'),
};

fs.mkdirSync(dest, { recursive: true });
for (const [name, a] of Object.entries(artifacts)) {
  if (!/^0x[0-9a-f]+$/.test(a.bytecode) || a.bytecode.includes('__$')) {
    console.error(`${name}: missing or unlinked bytecode`);
    process.exit(1);
  }
  fs.writeFileSync(path.join(dest, `${name}.json`), JSON.stringify({ abi: a.abi, bytecode: a.bytecode }) + '\n');
}
console.log(`wrote ${Object.keys(artifacts).length} artifacts to ${dest}`);
