#!/usr/bin/env bash
# Builds the contracts and writes the deployment artifacts the Rust side reads with alloy's sol!:
#   contracts/artifacts/<Name>.json = {"abi": [...], "bytecode": "0x..."}
# With --check, writes them to a temporary directory instead and fails if they differ from the
# committed ones (CI runs this). Both modes also check that the hub's ABI has PoCo's interface
# (scripts/check-poco-abi.js, against the ABI published in npm @iexec/poco) and that the hub and its
# delegatecalled task module have the same storage layout (scripts/check-storage-layout.js).
set -euo pipefail
cd "$(dirname "$0")"

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if [ ! -x node_modules/.bin/forge ]; then
  npm ci --no-audit --no-fund
fi
node_modules/.bin/forge build --skip test --skip script
node scripts/check-storage-layout.js out

if [ "$check" = 1 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  node scripts/extract-artifacts.js out "$tmp"
  node scripts/check-poco-abi.js "$tmp/DragonHub.json"
  if ! diff -r artifacts "$tmp" >/dev/null; then
    echo "contracts/artifacts is out of date with contracts/src: run contracts/build-artifacts.sh and commit" >&2
    diff -rq artifacts "$tmp" >&2 || true
    exit 1
  fi
  echo "artifacts up to date"
else
  node scripts/extract-artifacts.js out artifacts
  node scripts/check-poco-abi.js artifacts/DragonHub.json
fi
