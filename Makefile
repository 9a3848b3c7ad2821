# The two commands of README.md: `make run` and `make test`. Everything else is a step they call.
.PHONY: run test setup check-contracts

CARGO ?= cargo

# Set up, then run the local market: PostgreSQL cluster and anvil under .dragon/, and the server.
run: setup
	$(CARGO) run --release --bin dragon -- local

# Every test: Rust (unit, property, integration with real PostgreSQL and anvil), contracts (forge).
test: setup
	$(CARGO) test --workspace
	$(MAKE) check-contracts

setup:
	@scripts/setup.sh

check-contracts:
	cd contracts && ./node_modules/.bin/forge test
	@if [ -x contracts/build-artifacts.sh ]; then contracts/build-artifacts.sh --check; fi
