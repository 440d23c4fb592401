#!/usr/bin/env bash
# Runs the self-contained `privateml` on the GPU machine (no .NET there). Publish first, on the build machine:
#   dotnet publish src/PrivateMl.Cli -c Release -r linux-x64 --self-contained -p:PublishTrimmed=false \
#     -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:IncludeNativeLibrariesForSelfExtract=true \
#     -o artifacts/gpu-device            # ~50 MB; artifacts/ is git-ignored, so name it in `carry`
# Then pass `bash bench/gpu/device-run.sh` to the device tool's run with carry ["artifacts/gpu-device"].
set -u
P=${PRIVATEML:-artifacts/gpu-device/privateml}
chmod +x "$P"
N=$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')
nvidia-smi --query-gpu=index,name,driver_version,vbios_version --format=csv
nvidia-smi conf-compute -f 2>&1 | head -3
"$P" gpu status; echo "gpu status rc=$?"
"$P" gpu evidence --nonce "$N" --out "${OUT:-/tmp}/payload.json"; echo "gpu evidence rc=$?"
"$P" gpu evidence --nonce "$N" --simulate --gpus 8 --out "${OUT:-/tmp}/sim8.json" 2>&1 | grep -E '^(GPU evidence|collected|SIMULATED)'
"$P" gpu verify "${OUT:-/tmp}/sim8.json" --nonce "$N" --offline --allow-simulated --gpus 8 | head -1
