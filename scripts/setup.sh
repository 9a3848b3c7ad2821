#!/usr/bin/env bash
# Installs what Dragon needs on a fresh machine, then the pinned npm packages. Idempotent: a second run
# only checks. Called by `make run` and `make test`; nothing is to be installed by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
have_pg_server() {
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
have_pg_server || need_apt+=(postgresql)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
# A local Docker engine for the container executor (its tests start a private dockerd), and a static busybox
# (a dynamic one cannot run inside the images built from it).
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need_apt+=(busybox-static)
# A headless browser for the explorer's tests (driven by playwright-core from tests/browser).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# A one-node Slurm cluster for the `slurm` executor's tests (they start munged, slurmctld and slurmd of their own
# on localhost; no service of the packages is used).
{ command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 && command -v sbatch >/dev/null 2>&1; } \
  || need_apt+=(slurm-wlm)
{ command -v munged >/dev/null 2>&1 && command -v mungekey >/dev/null 2>&1; } || need_apt+=(munge)
# NATS, the bus between exchange instances (the cluster's tests start a nats-server of their own).
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
# Python 3 with venv, for Schemathesis (the API's contract test), installed from PyPI below.
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# (Debian's python3 lacks ensurepip, which `python3 -m venv` needs, until python3-venv is installed.)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing ${need_apt[*]}; install them (Debian: apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

# Pinned JavaScript toolchains: Foundry (anvil, forge, cast), solc, OpenZeppelin; ethers for the cross-check;
# iExec's SDK (8 and 9) for the SDK compatibility flows; socket.io-client for the feed tests; playwright-core
# for the explorer's browser tests.
for dir in contracts tests/ethers tests/sdk tests/socketio tests/browser; do
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "setup: npm ci in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

# Schemathesis (the API's contract test, tests/it/schemathesis.rs), pinned with its dependencies, in a venv of the
# project; reinstalled only when the pins change.
st=tests/schemathesis
if [ ! -x "$st/.venv/bin/st" ] || [ "$st/requirements.txt" -nt "$st/.venv/.installed" ]; then
  echo "setup: pip install in $st/.venv" >&2
  python3 -m venv "$st/.venv"
  "$st/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$st/requirements.txt"
  touch "$st/.venv/.installed"
fi
