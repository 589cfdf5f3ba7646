#!/usr/bin/env bash
# RingTrain's GPU kit: the one script the GPU test machine runs (see README.md beside it).
#
#   OUT=<dir> bash gpu-bench.sh        writes $OUT/bench/results/gpu.json (+ gpu-bench.log); OUT defaults to ./out
#
# It unpacks the kit into a temp folder, picks node (the machine's, if >= 20.19, else the bundled
# one), finds the Vulkan loader and NVIDIA's ICD, then runs each phase under `timeout`: the adapter
# check, PyTorch's reference (torch_ref.py), ms/step on webgpu/wasm/cpu, matmul GFLOP/s, and the
# CNN trained by 4 Node GPU peers in a ring to 0.91. The limits of the phases and of the searches
# before them add up to 7.75 minutes at most.
#
# Exit status: 0 all phases ran; 3 Dawn's adapter is not the NVIDIA GPU (a software one, or none);
# 4 some phase failed or ran out of time (gpu.json says which); 1 the kit could not start.
#
#   RINGTRAIN_KIT_ALLOW_SOFTWARE=1   accept a software adapter (checking the kit with SwiftShader)
#   RINGTRAIN_KIT_QUICK=1            a few steps of everything (minutes on SwiftShader)
#   VK_ICD_FILENAMES                 a Vulkan ICD to use instead of the one found
set -uo pipefail

KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-./out}"
mkdir -p "$OUT/bench/results" || exit 1
OUT="$(cd "$OUT" && pwd)"
RESULTS="$OUT/bench/results"
LOG="$RESULTS/gpu-bench.log"
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ringtrain-kit.XXXXXX")" || exit 1
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
START=$(date +%s)
log() { echo "[kit +$(($(date +%s) - START))s] $*"; }
die() {
  echo "*** FAIL: $* ***" >&2
  exit 1
}
mkdir -p "$WORK/status" "$WORK/bin"

# xz -d, or Python's lzma where the machine has no xz.
unxz_to() {
  if command -v xz >/dev/null 2>&1; then
    xz -dc "$1" >"$2"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}

log "kit: $KIT; work: $WORK; results: $RESULTS"
if command -v sha256sum >/dev/null 2>&1; then
  (cd "$KIT" && timeout 20 sha256sum --quiet -c SHA256SUMS) || die "the kit's files do not match SHA256SUMS (a truncated copy?)"
fi

# --- unpack -------------------------------------------------------------------------------------
unxz_to "$KIT/app.tar.xz" "$WORK/app.tar" && tar -m -C "$WORK" -xf "$WORK/app.tar" && rm "$WORK/app.tar" || die "cannot unpack app.tar.xz"
unxz_to "$KIT/dawn.node.xz" "$WORK/app/native/dawn.node" || die "cannot unpack dawn.node.xz"
mkdir -p "$WORK/data/public/datasets"
unxz_to "$KIT/fashion-mnist.tar.xz" "$WORK/fm.tar" && tar -m -C "$WORK/data/public/datasets" -xf "$WORK/fm.tar" && rm "$WORK/fm.tar" ||
  die "cannot unpack fashion-mnist.tar.xz"
for f in "$WORK"/data/public/datasets/fashion-mnist/*ubyte; do gzip -1 -n "$f" || die "cannot gzip $f"; done
log "unpacked"

# --- node ---------------------------------------------------------------------------------------
node_ok() { timeout 20 "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; }
NODE=""
NODE_FROM=""
if command -v node >/dev/null 2>&1 && node_ok "$(command -v node)"; then
  NODE="$(command -v node)"
  NODE_FROM="system"
else
  log "no node >= 20.19 on PATH ($(command -v node || echo none)): using the bundled one"
  unxz_to "$KIT/node.xz" "$WORK/bin/node" && chmod +x "$WORK/bin/node" || die "cannot unpack node.xz"
  NODE="$WORK/bin/node"
  NODE_FROM="bundled"
  node_ok "$NODE" || die "the bundled node does not run here: $("$NODE" --version 2>&1 | head -3)"
fi
log "node: $NODE ($NODE_FROM, $("$NODE" --version))"

# --- Vulkan: the loader, and NVIDIA's ICD from the driver -----------------------------------------
VULKAN_FROM="system"
if ! { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; }; then
  VULKAN_FROM="kit"
  mkdir -p "$WORK/vulkan"
  unxz_to "$KIT/libvulkan.so.1.xz" "$WORK/vulkan/libvulkan.so.1" || die "cannot unpack libvulkan.so.1.xz"
  export LD_LIBRARY_PATH="$WORK/vulkan${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
log "Vulkan loader: $VULKAN_FROM"

ICD_CANDIDATES=()
for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d /usr/share/glvnd /usr/share/glvnd/egl_vendor.d; do
  for f in "$d"/*.json; do [ -f "$f" ] && ICD_CANDIDATES+=("$f"); done
done
while IFS= read -r f; do ICD_CANDIDATES+=("$f"); done < <(timeout 15 find / -maxdepth 7 \( -path /proc -o -path /sys -o -path /dev \) -prune -o -name 'nvidia_icd*.json' -print 2>/dev/null | head -20)
NVIDIA_LIBS="$( (ldconfig -p 2>/dev/null | grep -E 'lib(GLX|EGL)_nvidia\.so\.0' | awk '{print $NF}'; timeout 10 find / -maxdepth 6 \( -path /proc -o -path /sys -o -path /dev \) -prune -o -name 'libGLX_nvidia.so.0' -print 2>/dev/null) | sort -u | head -10)"
NVIDIA_SMI="$(timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4)"
log "ICD files found: ${ICD_CANDIDATES[*]:-none}"
log "NVIDIA libraries: ${NVIDIA_LIBS:-none}; nvidia-smi: ${NVIDIA_SMI:-none}"
ICD_FROM="given"
if [ -z "${VK_ICD_FILENAMES:-}" ]; then
  ICD=""
  for f in "${ICD_CANDIDATES[@]}"; do
    case "$(basename "$f")" in nvidia_icd*.json) ICD="$f" && break ;; esac
  done
  if [ -n "$ICD" ]; then
    ICD_FROM="found"
  elif [ -n "$NVIDIA_LIBS" ]; then
    # A container given the driver's compute libraries but not its Vulkan manifest: write one.
    lib="$(echo "$NVIDIA_LIBS" | grep GLX | head -1)"
    lib="${lib:-$(echo "$NVIDIA_LIBS" | head -1)}"
    ICD="$WORK/nvidia_icd.json"
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$lib" >"$ICD"
    ICD_FROM="written for $lib"
  fi
  if [ -n "$ICD" ]; then export VK_ICD_FILENAMES="$ICD"; else ICD_FROM="none found"; fi
fi
log "VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-} ($ICD_FROM)"

json_str() { "$NODE" -e 'process.stdout.write(JSON.stringify(process.argv[1]))' "$1"; }
cat >"$WORK/env.json" <<EOF
{"node": $(json_str "$NODE"), "nodeFrom": "$NODE_FROM", "nodeVersion": $(json_str "$("$NODE" --version)"),
 "vulkanLoader": "$VULKAN_FROM", "icd": $(json_str "${VK_ICD_FILENAMES:-}"), "icdFrom": $(json_str "$ICD_FROM"),
 "icdCandidates": $(json_str "${ICD_CANDIDATES[*]:-}"), "nvidiaLibs": $(json_str "$NVIDIA_LIBS"), "nvidiaSmi": $(json_str "$NVIDIA_SMI"),
 "uname": $(json_str "$(uname -a)"), "quick": "${RINGTRAIN_KIT_QUICK:-0}", "allowSoftware": "${RINGTRAIN_KIT_ALLOW_SOFTWARE:-0}"}
EOF

# --- phases -------------------------------------------------------------------------------------
# phase <name> <seconds> <command...>: runs it under timeout, records its exit status (124: timed out).
phase() {
  local name="$1" limit="$2"
  shift 2
  log "phase $name (limit ${limit}s)"
  timeout -k 10 "$limit" "$@"
  local rc=$?
  echo "$rc" >"$WORK/status/$name"
  [ "$rc" = 0 ] || log "phase $name: exit $rc$([ "$rc" = 124 ] && echo ' (timed out)')"
  return "$rc"
}
BENCH=("$NODE" "$WORK/app/bench.mjs")

phase adapter 40 "${BENCH[@]}" adapter "$WORK"
ADAPTER_RC=$?
if [ "$ADAPTER_RC" != 0 ]; then
  timeout 30 "${BENCH[@]}" report "$WORK" "$RESULTS/gpu.json"
  echo "*** FAIL: Dawn's adapter is not the NVIDIA GPU (see above and $RESULTS/gpu.json); nothing was measured. ***" >&2
  exit 3
fi
if command -v python3 >/dev/null 2>&1; then
  RINGTRAIN_KIT_DATA="$WORK/data/public/datasets/fashion-mnist" phase torch 75 python3 "$KIT/torch_ref.py" "$WORK/torch.json"
else
  echo '{"available": false, "reason": "no python3 on this machine"}' >"$WORK/torch.json"
fi
phase micro 100 "${BENCH[@]}" micro "$WORK"
phase matmul 40 "${BENCH[@]}" matmul "$WORK"
phase ring 130 "${BENCH[@]}" ring "$WORK" "$WORK/data"
timeout 20 "${BENCH[@]}" report "$WORK" "$RESULTS/gpu.json" || die "the report phase failed"
log "done in $(($(date +%s) - START)) s"
for f in "$WORK"/status/*; do
  [ "$(cat "$f")" = 0 ] || {
    echo "*** some phases did not finish: $(cd "$WORK/status" && grep -vl '^0$' ./* | tr '\n' ' ') (see gpu.json) ***" >&2
    exit 4
  }
done
exit 0
