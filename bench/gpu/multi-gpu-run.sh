#!/usr/bin/env bash
# Issue 12: every GPU of a multi-GPU host through NVML, by the CLI and through the gateway's attestation report.
# Publish on the build machine (no .NET on the GPU machine; the llama.cpp natives are not needed here and would pass
# the device tool's 64 MiB carry limit):
#   dotnet publish src/PrivateMl.Cli -c Release -r linux-x64 --self-contained -p:PublishTrimmed=false \
#     -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:DebugType=none -o artifacts/gpu-device \
#     && rm -rf artifacts/gpu-device/runtimes artifacts/gpu-device/*.json           # ~57 MB
# then give the device tool's run `bash bench/gpu/multi-gpu-run.sh` with carry ["artifacts/gpu-device"] and a
# multi-GPU kind (nvidia-h100-x2, -x4, …). Runs here too: without a driver every step says so.
set -u
P=$(realpath "${PRIVATEML:-artifacts/gpu-device/privateml}")
chmod +x "$P"
O=${OUT:-$(mktemp -d)}
S=$(mktemp -d)
PORT=${PORT:-18080}
N=$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')
ms() { date +%s%N; }
step() { echo; echo "\$ $*"; }

step nvidia-smi --query-gpu=index,name,pci.bus_id,driver_version,vbios_version --format=csv
nvidia-smi --query-gpu=index,name,pci.bus_id,driver_version,vbios_version --format=csv 2>&1
step nvidia-smi conf-compute -f
nvidia-smi conf-compute -f 2>&1 | head -3
step nvidia-smi topo -m
nvidia-smi topo -m 2>&1 | head -12

step privateml gpu status
t=$(ms); "$P" gpu status 2>&1; rc=$?; echo "rc=$rc, $(( ($(ms) - t) / 1000000 )) ms"
step privateml gpu evidence --nonce "$N" --out payload.json
t=$(ms); "$P" gpu evidence --nonce "$N" --out "$O/payload.json" 2>&1; rc=$?; echo "rc=$rc, $(( ($(ms) - t) / 1000000 )) ms"
if [ -s "$O/payload.json" ]; then
  step privateml gpu verify payload.json --nonce "$N" --offline
  "$P" gpu verify "$O/payload.json" --nonce "$N" --offline 2>&1; echo "rc=$?"
fi

# The gateway's report path: a SIMULATED TDX agent for the quote, NVML for the GPUs, one nonce for both.
step privateml agent --simulate '&' privateml serve --gpu nvml '&'
"$P" agent --simulate --state "$S/agent" --socket "$S/dstack.sock" --tappd-socket "" --log-level warning >"$O/agent.log" 2>&1 &
AGENT=$!
for _ in $(seq 100); do [ -S "$S/dstack.sock" ] && break; sleep 0.1; done
"$P" serve --upstream http://127.0.0.1:9 --agent-socket "$S/dstack.sock" --listen "http://127.0.0.1:$PORT" --gpu nvml --log-level warning >"$O/serve.log" 2>&1 &
GATEWAY=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
step curl "/v1/attestation/report?nonce=$N"
curl -s "http://127.0.0.1:$PORT/v1/attestation/report?nonce=$N" -o "$O/report.json" -w "HTTP %{http_code}, %{time_total} s\n"
python3 - "$O/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("signing_address", r.get("signing_address"), "| nonce", r.get("request_nonce") or r.get("nonce"))
p = r.get("nvidia_payload")
if p:
    p = json.loads(p) if isinstance(p, str) else p
    print("nvidia_payload: arch", p.get("arch"), "|", len(p.get("evidence_list", [])), "GPU(s) | nonce", p.get("nonce"))
print("nvidia_payload_unavailable:", r.get("nvidia_payload_unavailable"))
PY
# `serve` has no simulated PCCS (`up` has): the collateral comes from the agent's simulator state, offline.
"$P" simulator collateral --state "$S/agent/tdx-simulator" --out "$S/collateral.json" >/dev/null 2>&1
step privateml verify "http://127.0.0.1:$PORT" --allow-simulated --simulated-root root.pem --collateral collateral.json --offline --require-gpu
"$P" simulator root --state "$S/agent/tdx-simulator" >"$S/root.pem" 2>/dev/null
"$P" verify "http://127.0.0.1:$PORT" --allow-simulated --simulated-root "$S/root.pem" --collateral "$S/collateral.json" --offline --require-gpu 2>&1 | grep -v "^– policy\."; echo "rc=${PIPESTATUS[0]}"
kill "$GATEWAY" "$AGENT" 2>/dev/null; wait 2>/dev/null
echo; echo "logs: $O"
