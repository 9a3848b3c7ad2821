#!/usr/bin/env bash
# Receipt gas of real transactions: starts anvil, runs script/GasScenario.s.sol (deploy, 6 matchOrders,
# a batch of 20, a trust-1 task, a trust-3 task, a claim after the deadline) and summarises gasUsed per
# function from forge's broadcast receipts. These are the figures PoCo's hardhat gas reporter measures.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18555}
RPC=http://127.0.0.1:$PORT
node_modules/.bin/anvil --port "$PORT" --silent &
ANVIL=$!
trap 'kill $ANVIL 2>/dev/null || true' EXIT
for _ in $(seq 50); do node_modules/.bin/cast chain-id --rpc-url "$RPC" >/dev/null 2>&1 && break; sleep 0.2; done

F=node_modules/.bin/forge
$F script script/GasScenario.s.sol:GasScenario --rpc-url "$RPC" --broadcast --slow >/tmp/gas-scenario.log 2>&1 ||
  { cat /tmp/gas-scenario.log; exit 1; }
RUN=broadcast/GasScenario.s.sol/31337/run-latest.json
HUB=$(node -e "const r=require('./$RUN');const t=r.transactions.find(t=>t.contractName==='DragonHub'&&t.transactionType==='CREATE');process.stdout.write(t.contractAddress)")
cp "$RUN" /tmp/gas-run1.json
node_modules/.bin/cast rpc --rpc-url "$RPC" evm_increaseTime 3600 >/dev/null
node_modules/.bin/cast rpc --rpc-url "$RPC" evm_mine >/dev/null
$F script script/GasScenario.s.sol:GasScenario --sig "claimLater(address)" "$HUB" --rpc-url "$RPC" --broadcast --slow \
  >/tmp/gas-claim.log 2>&1 || { cat /tmp/gas-claim.log; exit 1; }
cp broadcast/GasScenario.s.sol/31337/claimLater-latest.json /tmp/gas-run2.json
# selectors of the task functions the hub serves through its fallback (forge cannot name them)
SELECTORS=$(for s in "initialize(bytes32,uint256)" "contribute(bytes32,bytes32,bytes32,address,bytes,bytes)" \
  "reveal(bytes32,bytes32)" "finalize(bytes32,bytes,bytes)" "claim(bytes32)" \
  "contributeAndFinalize(bytes32,bytes32,bytes,bytes,address,bytes,bytes)"; do
  printf '%s=%s;' "$(node_modules/.bin/cast sig "$s")" "${s%%(*}"; done)
export SELECTORS

node -e '
const runs = [require("/tmp/gas-run1.json"), require("/tmp/gas-run2.json")];
const sel = Object.fromEntries(process.env.SELECTORS.split(";").filter(Boolean).map((kv) => kv.split("=")));
const rows = {};
for (const run of runs) {
  run.transactions.forEach((t, i) => {
    const r = run.receipts[i];
    const name = t.transactionType === "CREATE" ? "deploy " + t.contractName : (t.function ? t.function.split("(")[0] : sel[t.transaction.input.slice(0, 10)] || "?");
    (rows[name] = rows[name] || []).push(parseInt(r.gasUsed, 16));
  });
}
const pad = (s, n) => String(s).padStart(n);
console.log("| transaction | n | min | avg | max |");
console.log("|---|---:|---:|---:|---:|");
for (const [k, v] of Object.entries(rows)) {
  const avg = Math.round(v.reduce((a, b) => a + b, 0) / v.length);
  console.log(`| ${k} | ${v.length} | ${Math.min(...v)} | ${avg} | ${Math.max(...v)} |`);
}
'
