#!/usr/bin/env node
// A solc stand-in for forge: forge cannot download native solc here (offline), but it accepts any
// executable that answers `--version` and `--standard-json` like solc. This wraps the pinned solcjs
// (WebAssembly) from node_modules, so the compiler version is fixed by package-lock.json.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const args = process.argv.slice(2);
if (args.includes('--version')) {
  // solc prints e.g. "Version: 0.8.37+commit.xxxxxxxx.Linux.g++"; forge parses the semver after "Version: ".
  const v = solc.version().replace('.Emscripten.clang', '');
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${v}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solc.js: only --version and --standard-json are supported\n');
  process.exit(2);
}

// Allowed roots for imports: forge passes --base-path / --include-path / --allow-paths.
const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if (['--base-path', '--include-path', '--allow-paths'].includes(args[i]) && args[i + 1]) {
    for (const p of args[i + 1].split(',')) roots.push(path.resolve(p));
  }
}

function findImports(p) {
  for (const root of roots) {
    const full = path.resolve(root, p);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, 'utf8') };
  }
  return { error: `File not found: ${p}` };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
