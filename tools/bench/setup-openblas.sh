#!/bin/sh
# Points Debian's libblas.so.3 at OpenBLAS (OpenMP build) so that python3-torch's torch.mm runs on an optimized
# BLAS. Debian's torch links the reference libblas.so.3 (netlib, ~4 GFLOP/s at 1024x1024); with OpenBLAS it reaches
# hundreds of GFLOP/s. Needs root. tools/bench/side_by_side.py checks the result before it benchmarks.
#
# OpenBLAS 0.3.21 (Debian bookworm) does not know AMD Zen 4 and falls back to a slow generic core on such CPUs;
# run the benchmark with OPENBLAS_CORETYPE=SkylakeX there (the script prints that hint when it sees a slow torch.mm).
set -eu

ALT=libblas.so.3-x86_64-linux-gnu
TARGET=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-openblas.sh: run as root (apt-get and update-alternatives)" >&2
    exit 2
fi
if [ ! -e "$TARGET" ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y libopenblas0-openmp
fi
update-alternatives --set "$ALT" "$TARGET"
update-alternatives --display "$ALT" | head -n 3

# A quick check with Debian's interpreter (not the pyenv python3 on PATH).
/usr/bin/python3 - <<'PY'
import os, time, torch
torch.set_num_threads(2)
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
for _ in range(3):
    torch.mm(a, b)
times = []
for _ in range(10):
    t = time.perf_counter(); torch.mm(a, b); times.append(time.perf_counter() - t)
times.sort()
gflops = 2 * 1024 ** 3 / times[len(times) // 2] / 1e9
core = os.environ.get("OPENBLAS_CORETYPE", "(auto)")
print(f"torch.mm 1024x1024x1024, 2 threads, OPENBLAS_CORETYPE={core}: {gflops:.1f} GFLOP/s")
if gflops < 200 and "OPENBLAS_CORETYPE" not in os.environ:
    print("below 200 GFLOP/s: OpenBLAS may have misdetected the CPU; retry with OPENBLAS_CORETYPE=SkylakeX")
PY
