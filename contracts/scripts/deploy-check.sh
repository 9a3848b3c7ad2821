#!/usr/bin/env bash
# Deploys the committed artifacts on a running node (default: anvil at 127.0.0.1:8545, its first dev
# account) in the documented order, then smoke-tests the hub: default categories, asset creation,
# deposit. Proves the artifacts deploy under the normal 24 KiB code-size limit.
# Usage: scripts/deploy-check.sh [rpc-url] [private-key]
set -euo pipefail
cd "$(dirname "$0")/.."
RPC=${1:-http://127.0.0.1:8545}
KEY=${2:-0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80}
CAST=node_modules/.bin/cast
ME=$($CAST wallet address "$KEY")

bytecode() { node -e "process.stdout.write(require('./artifacts/$1.json').bytecode)"; }
deploy() { # name [constructor-signature args...]
  local name=$1; shift
  local code; code=$(bytecode "$name")
  if [ $# -gt 0 ]; then
    local sig=$1; shift
    code="$code$($CAST abi-encode "$sig" "$@" | sed 's/^0x//')"
  fi
  $CAST send --rpc-url "$RPC" --private-key "$KEY" --json --create "$code" | node -e '
    let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);
    if(r.status!=="0x1"){console.error("deploy failed");process.exit(1)}
    process.stdout.write(r.contractAddress)})'
}

RLC=$(deploy RLC)
APPS=$(deploy AppRegistry)
DATASETS=$(deploy DatasetRegistry)
POOLS=$(deploy WorkerpoolRegistry)
HUB=$(deploy DragonHub "constructor(address,address,address,address)" "$RLC" "$APPS" "$DATASETS" "$POOLS")
echo "RLC=$RLC"
echo "AppRegistry=$APPS DatasetRegistry=$DATASETS WorkerpoolRegistry=$POOLS"
echo "DragonHub=$HUB"

send() { $CAST send --rpc-url "$RPC" --private-key "$KEY" "$@" >/dev/null; }
call() { $CAST call --rpc-url "$RPC" "$@"; }

[ "$(call "$HUB" "countCategory()(uint256)")" = 5 ] || { echo "expected 5 categories" >&2; exit 1; }
[ "$(call "$HUB" "token()(address)" | tr A-F a-f)" = "$(echo "$RLC" | tr A-F a-f)" ] || { echo "token mismatch" >&2; exit 1; }
send "$POOLS" "createWorkerpool(address,string)" "$ME" "pool"
send "$APPS" "createApp(address,string,string,bytes,bytes32,bytes)" "$ME" "app" "DOCKER" 0x00 0x0000000000000000000000000000000000000000000000000000000000000000 0x
send "$RLC" "mint(address,uint256)" "$ME" 1000000000000
send "$RLC" "approve(address,uint256)" "$HUB" 1000000000000
send "$HUB" "deposit(uint256)" 1000000000000
[ "$(call "$HUB" "balanceOf(address)(uint256)" "$ME" | cut -d' ' -f1)" = 1000000000000 ] || { echo "deposit failed" >&2; exit 1; }
echo "deploy-check: ok"
