#!/usr/bin/env bash
# One million (default) random byte flips and truncations of the real quotes and collateral, fixed seed: every
# outcome must be a typed error. Usage: bench/dcap-mutation-soak.sh [COUNT] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build -c Release bench/PrivateMl.Benchmarks -v q -nologo >/dev/null
dotnet bench/PrivateMl.Benchmarks/bin/Release/net10.0/PrivateMl.Benchmarks.dll mutate "${1:-1000000}" "${2:-20261125}"
