#!/usr/bin/env bash
# The gateway side-by-side bench on a many-core machine without .NET (the device machine). Publish first, here:
#   dotnet publish bench/gateway -c Release -r linux-x64 --self-contained -p:PublishSingleFile=true \
#     -p:EnableCompressionInSingleFile=true -p:DebugType=none -o artifacts/gwbench
#   rm -rf artifacts/gwbench/runtimes      # LLamaSharp's native libraries: the bench never loads them (~57 MB left)
# then run `bash bench/gateway/device-run.sh readme|pinned|two-core|full|unpaced|stagger|final|yardstick|knobs|levels|nginx|client` there with carry ["artifacts/gwbench"]
# (and "artifacts/nginx" for nginx: the yardstick nginx and the same rounds with the .NET one, ~560 s).
#   pinned   : load generator, upstream and gateway on 4 CPUs each of their own, 16 and 128 streams
#   two-core : all three processes on CPUs 0-1 (the 2-core VM), gateway runtime knobs A/B, 16 and 128 streams
#   final    : 1, 16, 128 staggered streams with the yardstick, pinned; then 16 and 128 with inline I/O (~560 s)
#   client   : the upstream client A/B (--upstream-client sockets vs httpclient) on CPUs 0-1, alternating
#   readme   : the README command in one call, every process on CPUs 0-1 (as the 2-core VM), without the optional
#              --bare-proxy yardstick, which would take the call past the device's 10-minute limit (~405 s)
#   full     : the README command's paced part (1, 16, 128 streams) with the bare-proxy yardstick, each process on
#              4 CPUs of its own (~575 s); unpaced: its unpaced part
set -u
B=${BENCH:-artifacts/gwbench/PrivateMl.Gateway.Bench}
O=${OUT:-/tmp}
chmod +x "$B"
nproc; lscpu | grep -E '^(Model name|Thread|Core|Socket|NUMA node\(s\))' ; uptime
pinned="--pin-upstream 4-7 --pin-gateway 8-11"
quick="--levels 16,128 --seconds 6 --min-requests 200 --rounds 3 --skip-unpaced"
run() { # name, cpus for the load generator, limit seconds, bench options...
  local name=$1 cpus=$2 limit=$3; shift 3
  echo "=== $name ($(date -u +%T))"
  timeout "$limit" taskset -c "$cpus" "$B" "$@" > "$O/$name.txt" 2>&1; echo "rc=$?"
  grep -E '^\| (1|16|128) \|' "$O/$name.txt" | head -16
}
case "${1:-pinned}" in
  pinned)
    run pinned-default 0-3 150 $quick $pinned
    run pinned-inline 0-3 150 $quick $pinned --inline-scheduling on --gateway-env "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1"
    ;;
  levels)
    run pinned-levels 0-3 420 --levels 1,16,128 --seconds 6 --min-requests 200 --rounds 4 --skip-unpaced $pinned
    run two-default 0-1 150 $quick
    run pinned-inline 0-3 150 $quick $pinned --inline-scheduling on --gateway-env "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1"
    ;;
  two-core)
    run two-default 0-1 150 $quick
    run two-nospin 0-1 150 $quick --gateway-env "DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0"
    run two-inline 0-1 150 $quick --inline-scheduling on --gateway-env "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1"
    run two-both 0-1 150 $quick --inline-scheduling on --gateway-env "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1;DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0"
    ;;
  yardstick)
    run pinned-bare 0-3 330 --levels 1,16,128 --seconds 6 --min-requests 100 --rounds 4 --skip-unpaced --bare-proxy $pinned
    run two-bare 0-1 150 $quick --bare-proxy
    ;;
  knobs)
    k="--levels 128 --seconds 6 --min-requests 200 --rounds 3 --skip-unpaced --bare-proxy $pinned"
    run k-default 0-3 120 $k
    run k-gcserver 0-3 120 $k --gateway-env "DOTNET_gcServer=1"
    run k-gen0 0-3 120 $k --gateway-env "DOTNET_GCgen0size=0x4000000"
    run k-inline 0-3 120 $k --inline-scheduling on --gateway-env "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1"
    ;;
  readme)
    run readme 0-1 590 --seconds 10 --min-requests 200 --rounds 4 --unpaced-seconds 8 --unpaced-concurrency 32 --stagger
    ;;
  full)
    run full 0-3 590 --seconds 10 --min-requests 200 --rounds 4 --skip-unpaced --bare-proxy $pinned
    ;;
  stagger)
    run pinned-stagger 0-3 200 --levels 16,128 --seconds 8 --min-requests 200 --rounds 4 --skip-unpaced --bare-proxy --stagger $pinned
    run pinned-lockstep 0-3 200 --levels 128 --seconds 8 --min-requests 200 --rounds 4 --skip-unpaced --bare-proxy $pinned
    ;;
  final)
    run final-stagger 0-3 400 --levels 1,16,128 --seconds 6 --min-requests 150 --rounds 2 --skip-unpaced --bare-proxy --stagger $pinned
    run final-inline 0-3 170 --levels 16,128 --seconds 6 --min-requests 150 --rounds 2 --skip-unpaced --bare-proxy --stagger $pinned --inline-scheduling on --gateway-env "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1"
    ;;
  nginx)
    # nginx and the libraries it links, carried from a Debian machine (bench/gateway/README.md says how).
    export BENCH_NGINX=$PWD/artifacts/nginx/nginx.sh
    run n-nginx 0-3 290 --levels 1,16,128 --seconds 5 --min-requests 80 --rounds 2 --skip-unpaced --stagger --yardstick nginx $pinned
    run n-dotnet 0-3 290 --levels 1,16,128 --seconds 5 --min-requests 80 --rounds 2 --skip-unpaced --stagger --bare-proxy $pinned
    ;;
  client)
    # The gateway's upstream client A/B (HTTP/1.1 sockets vs SocketsHttpHandler), all processes on CPUs 0-1 as on the
    # 2-core VM, alternating; one stream with 4-token streams (more first bytes per second), then 16 and 128.
    one="--levels 1 --seconds 5 --min-requests 300 --rounds 2 --skip-unpaced --stagger --tokens 4 --bare-proxy"
    for i in 1 2; do
      run c1-sockets-$i 0-1 100 $one --upstream-client sockets
      run c1-httpclient-$i 0-1 100 $one --upstream-client httpclient
    done
    many="--levels 16,128 --seconds 6 --min-requests 150 --rounds 2 --skip-unpaced --stagger"
    run c16-sockets 0-1 100 $many --upstream-client sockets
    run c16-httpclient 0-1 100 $many --upstream-client httpclient
    ;;
  unpaced)
    run unpaced 0-3 120 --skip-paced --unpaced-seconds 8 --unpaced-concurrency 32 $pinned
    ;;
esac
uptime
