#!/usr/bin/env node
// The hub delegatecalls its task module, so both contracts run on the hub's storage: every variable must
// sit at the same slot and offset with the same type in both, or the module silently reads and writes the
// wrong fields. The design keeps this true by declaring all state in HubStorage, which both inherit; this
// check enforces it on the compiler's own storage layouts (forge's `storageLayout` extra output):
//   - every state variable of either contract is one HubStorage declares (same declaration), and each has
//     all of HubStorage's;
//   - both contracts have the same variables, at the same slots and offsets, with structurally equal types
//     (types are compared by shape, struct members included, not by the compiler's AST ids).
// Usage: check-storage-layout.js <forge out dir>
'use strict';
const fs = require('fs');
const path = require('path');

const outDir = process.argv[2] || path.join(__dirname, '..', 'out');
const BASE = 'src/HubStorage.sol:HubStorage';
const PAIR = [
  ['DragonHub.sol', 'DragonHub'],
  ['DragonTasks.sol', 'DragonTasks'],
];

function layoutOf(file, name) {
  const p = path.join(outDir, file, `${name}.json`);
  const j = JSON.parse(fs.readFileSync(p, 'utf8'));
  const layout = j.storageLayout;
  if (!layout || !Array.isArray(layout.storage)) {
    console.error(`${p} has no storageLayout: foundry.toml must keep extra_output = ["storageLayout"]`);
    process.exit(1);
  }
  return layout;
}

// A type's shape, recursively, without AST ids (struct member layouts included: a reordered struct
// field moves data even when the variable's slot does not).
function shape(types, id, depth = 0) {
  const t = types[id];
  if (!t) return `?${id}`;
  if (depth > 16) return t.label;
  const parts = [t.encoding, t.label.replace(/\)\d+/g, ')'), t.numberOfBytes];
  if (t.key) parts.push(`key=${shape(types, t.key, depth + 1)}`);
  if (t.value) parts.push(`value=${shape(types, t.value, depth + 1)}`);
  if (t.base) parts.push(`base=${shape(types, t.base, depth + 1)}`);
  if (t.members) {
    parts.push(
      `{${t.members.map((m) => `${m.label}@${m.slot}+${m.offset}:${shape(types, m.type, depth + 1)}`).join(';')}}`,
    );
  }
  return parts.join(' ');
}

const errors = [];
// HubStorage's own layout is the reference: a variable belongs to it when its declaration (astId) is one of
// HubStorage's, whatever contract the layout was computed for.
const base = layoutOf('HubStorage.sol', 'HubStorage');
const baseIds = new Set(base.storage.map((v) => v.astId));
const byContract = PAIR.map(([file, name]) => {
  const layout = layoutOf(file, name);
  const vars = new Map();
  for (const v of layout.storage) {
    if (!baseIds.has(v.astId)) {
      errors.push(`${name} declares state variable \`${v.label}\` (slot ${v.slot}) outside HubStorage; state belongs in ${BASE}`);
    }
    vars.set(v.label, { slot: v.slot, offset: v.offset, type: shape(layout.types, v.type) });
  }
  for (const v of base.storage) {
    if (!vars.has(v.label)) errors.push(`${name} lacks HubStorage's \`${v.label}\``);
  }
  return { name, vars };
});
const [a, b] = byContract;
for (const [label, va] of a.vars) {
  const vb = b.vars.get(label);
  if (!vb) {
    errors.push(`\`${label}\` is in ${a.name}'s storage (slot ${va.slot}) but not in ${b.name}'s`);
    continue;
  }
  if (va.slot !== vb.slot || va.offset !== vb.offset) {
    errors.push(
      `\`${label}\`: slot ${va.slot} offset ${va.offset} in ${a.name}, slot ${vb.slot} offset ${vb.offset} in ${b.name}`,
    );
  }
  if (va.type !== vb.type) {
    // Point at the first struct member or type part that differs rather than print two long shapes.
    const pa = va.type.split(/[;{}]/);
    const pb = vb.type.split(/[;{}]/);
    let i = 0;
    while (i < pa.length && pa[i] === pb[i]) ++i;
    errors.push(`\`${label}\`: type differs at \`${pa[i] ?? ''}\` (${a.name}) vs \`${pb[i] ?? ''}\` (${b.name})`);
  }
}
for (const [label, vb] of b.vars) {
  if (!a.vars.has(label)) errors.push(`\`${label}\` is in ${b.name}'s storage (slot ${vb.slot}) but not in ${a.name}'s`);
}

if (errors.length) {
  console.error(`storage layouts of ${a.name} and ${b.name} (which it delegatecalls) differ:\n  ${errors.join('\n  ')}`);
  process.exit(1);
}
console.log(`storage layout check: ${a.vars.size} variables at the same slots in ${a.name} and ${b.name}`);
