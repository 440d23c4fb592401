#!/usr/bin/env bash
# Side-by-side greedy tokens/s on one GGUF, same prompt and thread count, in one run:
#   llamasharp-raw       LLamaSharp 0.30.0 token loop (no engine)
#   embedded-engine      privateml's EmbeddedEngine, /v1/completions through IInferenceBackend (bytes in/out)
#   gateway-over-engine  the attesting gateway (HTTP on loopback, EIP-191 + Ed25519 signing) over the engine
#   node-llama-cpp       node-llama-cpp 3.22.1 (tests/interop/llama/greedy.mjs)
# Usage: bench/inference/run.sh [--model PATH.gguf] [--tokens N] [--threads N] [--runs N] [--prompt TEXT]
# Default model: the demo GGUF (seed 42), whose per-token work is tiny, so it measures per-token overhead;
# pass a real GGUF to measure compute.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"; root="$(cd "$here/../.." && pwd)"
model=""; tokens=64; threads=1; runs=10; prompt="the world"
while [[ $# -gt 0 ]]; do case "$1" in
  --model) model="$2"; shift 2;; --tokens) tokens="$2"; shift 2;; --threads) threads="$2"; shift 2;;
  --runs) runs="$2"; shift 2;; --prompt) prompt="$2"; shift 2;; *) echo "unknown option $1" >&2; exit 2;; esac; done
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
dotnet build -c Release "$here/InferenceSideBySide" -o "$work/bin" >/dev/null
if [[ -z "$model" ]]; then
  dotnet build -c Release "$root/src/PrivateMl.Cli" -o "$work/cli" >/dev/null
  model="$work/demo.gguf"; dotnet "$work/cli/privateml.dll" model make-demo "$model" >/dev/null
fi
[[ -d "$root/tests/interop/llama/node_modules/node-llama-cpp" ]] || (cd "$root/tests/interop/llama" && npm ci --no-audit --no-fund --loglevel=error)
{
  dotnet "$work/bin/InferenceSideBySide.dll" --model "$model" --prompt "$prompt" --tokens "$tokens" --threads "$threads" --runs "$runs"
  (cd "$root/tests/interop/llama" && node greedy.mjs --model "$model" --prompt "$prompt" --tokens "$tokens" --threads "$threads" --runs "$runs") \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);console.log(JSON.stringify({name:"node-llama-cpp",tokensPerSecond:r.tokensPerSecond,tokensPerCpuSecond:r.tokensPerCpuSecond}))})'
} > "$work/results.jsonl"
node - "$work/results.jsonl" "$model" "$tokens" "$threads" "$runs" <<'JS'
const fs = require("fs");
const [file, model, tokens, threads, runs] = process.argv.slice(2);
const rows = fs.readFileSync(file, "utf8").trim().split("\n").map(l => JSON.parse(l));
const median = a => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const pick = (name, key) => median(rows.find(r => r.name === name)[key]);
console.log(`model ${model}; ${tokens} greedy tokens; ${threads} thread(s); median of ${runs} runs after a warm-up`);
console.log("tokens/s by wall clock, and per CPU-second used by the process (steadier on a shared machine)");
console.log("way".padEnd(22) + "wall tok/s".padStart(12) + "  vs node".padStart(10) + "  cpu tok/s".padStart(12) + "  vs node".padStart(10) + "  vs engine (cpu)".padStart(18));
for (const r of rows) {
  const w = pick(r.name, "tokensPerSecond"), c = pick(r.name, "tokensPerCpuSecond");
  const pct = (a, b) => `${(100 * a / b).toFixed(1)} %`;
  console.log(r.name.padEnd(22) + w.toFixed(1).padStart(12) + pct(w, pick("node-llama-cpp", "tokensPerSecond")).padStart(10)
    + c.toFixed(1).padStart(12) + pct(c, pick("node-llama-cpp", "tokensPerCpuSecond")).padStart(10)
    + pct(c, pick("embedded-engine", "tokensPerCpuSecond")).padStart(18));
}
JS
