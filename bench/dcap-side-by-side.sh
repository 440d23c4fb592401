#!/usr/bin/env bash
# Full DCAP verification of the same quote + collateral + time by our verifier (cold and warm) and by the two npm
# peers, @phala/dcap-qvl (JS) and @phala/dcap-qvl-web (Rust→WASM), in one run, each pinned to one core.
# Usage: bench/dcap-side-by-side.sh [SECONDS_PER_VERIFIER] [CORE]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
core=${2:-1}
data=../shared/testdata/tdx/dcap-qvl
quote=$data/tdx_quote
collateral=$data/tdx_quote_collateral.json
now=1750400000
(cd bench/dcap-peers && npm install --no-audit --no-fund --loglevel=error >/dev/null)
dotnet build -c Release bench/PrivateMl.Benchmarks -v q -nologo >/dev/null
taskset -c "$core" dotnet bench/PrivateMl.Benchmarks/bin/Release/net10.0/PrivateMl.Benchmarks.dll side-by-side "$quote" "$collateral" "$now" "$seconds"
taskset -c "$core" node bench/dcap-peers/peers.mjs "$quote" "$collateral" "$now" "$seconds"
