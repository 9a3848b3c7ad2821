#!/usr/bin/env bash
# Transaction gas of each scenario of test/Gas.t.sol. `--isolate` runs every call of a test as its own
# transaction (cold storage, 21000 base cost and calldata included), so the figures are what a
# transaction receipt would show.
set -euo pipefail
cd "$(dirname "$0")/.."
for t in test_gas_matchOrders test_gas_matchOrders_withDataset test_gas_matchOrders_longParams \
         test_gas_matchOrdersBatch20 test_gas_trust1Task; do
  echo "== $t"
  node_modules/.bin/forge test --match-path test/Gas.t.sol --match-test "${t}\(" --isolate --gas-report 2>&1 |
    grep -E "^\| (matchOrders|matchOrdersBatch|fallback|initialize|contributeAndFinalize) " || true
done
