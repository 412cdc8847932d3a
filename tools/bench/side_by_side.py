#!/usr/bin/python3
"""Backprop.Onnx next to PyTorch eager (and ONNX Runtime's forward) on the benchmark workloads W1-W4, in one run.

Run from anywhere with Debian's interpreter (python3-torch 1.13), not the pyenv python3 on PATH:

    /usr/bin/python3 tools/bench/side_by_side.py            # the full comparison (about 10 minutes on 2 cores)
    /usr/bin/python3 tools/bench/side_by_side.py --smoke    # tiny settings for CI: W1 only, 1 warm-up, 2 steps

What it does:
  1. checks that torch.mm runs on an optimized BLAS (>= 200 GFLOP/s at 1024x1024; Debian's torch links the reference
     libblas.so.3 by default): else it prints how to switch to OpenBLAS (tools/bench/setup-openblas.sh) and exits 3;
  2. builds the CLI in Release;
  3. per workload (onnx-models/bench/<w>/, manifest.json gives the input shape and the loss):
       ours:  `backprop-onnx bench MODEL --loss L --warmup 5 --steps 20 --threads 2 --ort` (medians of forward,
              forward + backward, SGD step; managed bytes allocated per step; ONNX Runtime's forward);
       torch: the same architecture (tools/reference-models/models.py) with the ONNX initializers loaded by name,
              training mode, same batch and loss, medians of forward (under no_grad), forward + backward, and a full
              SGD step (zero_grad + forward + backward + optimizer.step);
       peak RSS of a 50-step training process of each (ru_maxrss of that child, from os.wait4);
     a workload our engine cannot run yet gets "error: <first line>" in its row, and the run goes on;
  4. GEMM: `backprop-onnx bench-gemm` vs torch.mm (out=, same shapes and transposes) in GFLOP/s, on square sizes and on
     the GEMM shapes of W1-W4 (Linear layers forward, input gradient and weight gradient; per-image Conv im2col);
  5. prints two Markdown tables (progress goes to stderr).

Ratios are ours/torch for times (above 1: we are slower) and ours/torch for GFLOP/s (below 1: we are slower).
Exit codes: 0 done (rows may hold errors; --strict makes them exit 1), 2 bad arguments or build failure, 3 slow BLAS.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI_PROJECT = os.path.join(ROOT, "tools", "Backprop.Onnx.Cli")
CLI_DLL = os.path.join(CLI_PROJECT, "bin", "Release", "net10.0", "backprop-onnx.dll")
BENCH = os.path.join(ROOT, "onnx-models", "bench")
MIN_BLAS_GFLOPS = 200.0
CHILD_TIMEOUT_S = 1800

# name, folder, how to build the PyTorch module (tools/reference-models/models.py), GEMM shapes (m, n, k, trans, role).
# A Linear layer in -> out on a batch B runs Y = X W^T (B x out x in, nt), dX = dY W (B x in x out, nn) and
# dW = dY^T X (out x in x B, tn); a Conv runs per image W (M x C*K) times im2col (C*K x L).


def linear_shapes(batch, layers, names):
    out = []
    for (fan_in, fan_out), name in zip(layers, names):
        out += [(batch, fan_out, fan_in, "nt", f"{name} fwd"), (batch, fan_in, fan_out, "nn", f"{name} dX"),
                (fan_out, fan_in, batch, "tn", f"{name} dW")]
    return out


WORKLOADS = [
    dict(name="w1_mlp", build=lambda M: M.Mlp([784, 512, 256, 10]),
         gemm=linear_shapes(128, [(784, 512), (512, 256), (256, 10)], ["fc1", "fc2", "fc3"])),
    dict(name="w2_lenet", build=lambda M: M.LeNet(),
         gemm=[(6, 784, 25, "nn", "conv1 fwd/img"), (16, 100, 150, "nn", "conv2 fwd/img")]
         + linear_shapes(64, [(400, 120), (120, 84), (84, 10)], ["fc1", "fc2", "fc3"])),
    dict(name="w3_resnet", build=lambda M: M.ResNetSmall(),
         gemm=[(16, 1024, 27, "nn", "stem fwd/img"), (16, 1024, 144, "nn", "block1 conv fwd/img"),
               (32, 256, 144, "nn", "block2 conv1 fwd/img"), (32, 256, 288, "nn", "block2 conv2 fwd/img"),
               (32, 256, 16, "nn", "shortcut fwd/img")] + linear_shapes(32, [(32, 10)], ["fc"])),
    dict(name="w4_transformer", build=lambda M: M.Transformer(128, 4, 512, "relu"),
         gemm=linear_shapes(1024, [(128, 384), (128, 128), (128, 512), (512, 128)],
                            ["in_proj", "out_proj", "linear1", "linear2"])
         + [(64, 64, 32, "nt", "QK^T/head"), (64, 32, 64, "nn", "AV/head")]),
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs)


def first_line(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for l in lines:
        if l.startswith("error:") or "Exception" in l:
            return l
    return lines[0] if lines else "(no output)"


# ---------------------------------------------------------------------------------------------------- PyTorch side

def import_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit(f"side_by_side.py: cannot import torch with {sys.executable}; "
                         "run it with Debian's /usr/bin/python3 (apt-get install -y python3-torch)")
    import torch
    return torch


def loaded_blas():
    """The libblas.so.3 this process loaded (resolved), and the core OpenBLAS chose when that is OpenBLAS.

    Debian's torch links libblas.so.3 (the alternative decides which BLAS that is); liblapack.so.3 may load
    libopenblas.so.0 next to a reference libblas.so.3, so the mere presence of OpenBLAS in the process proves nothing."""
    mapped = set()
    try:
        with open("/proc/self/maps") as maps:
            mapped = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        pass
    blas = next((os.path.realpath(p) for p in sorted(mapped) if os.path.basename(p).startswith("libblas.so")), "unknown")
    core = ""
    openblas = next((p for p in sorted(mapped) if os.path.basename(p).startswith("libopenblas")), None)
    if "openblas" in blas and openblas:
        try:
            import ctypes
            so = ctypes.CDLL(openblas)
            so.openblas_get_corename.restype = ctypes.c_char_p
            core = so.openblas_get_corename().decode()
        except (OSError, AttributeError):
            pass
    return blas, core


def time_call(fn, repeat, min_run_s=1e-3):
    """Median seconds of one call over `repeat` runs after a warm-up; short calls repeat inside a run (>= 1 ms)."""
    start, warm = time.perf_counter(), 0
    while warm < 2 or (time.perf_counter() - start < 0.05 and warm < 10000):
        fn()
        warm += 1
    inner = max(1, int(min_run_s / max((time.perf_counter() - start) / warm, 1e-9)) + 1)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return median(times), min(times)


def torch_gemm_gflops(torch, m, n, k, trans, repeat):
    g = torch.Generator().manual_seed(0)
    a = torch.rand((k, m) if trans[0] == "t" else (m, k), generator=g) * 2 - 1
    b = torch.rand((n, k) if trans[1] == "t" else (k, n), generator=g) * 2 - 1
    a, b = (a.t() if trans[0] == "t" else a), (b.t() if trans[1] == "t" else b)
    c = torch.empty(m, n)
    med, best = time_call(lambda: torch.mm(a, b, out=c), repeat)
    return 2.0 * m * n * k / med / 1e9, 2.0 * m * n * k / best / 1e9


def check_blas(torch, threads, minimum, smoke):
    lib, core = loaded_blas()
    median_gf, best_gf = torch_gemm_gflops(torch, 1024, 1024, 1024, "nn", 10)
    core_text = f", core {core}" if core else ""
    log(f"torch.mm 1024x1024x1024 on {threads} threads: best {best_gf:.1f}, median {median_gf:.1f} GFLOP/s "
        f"({lib}{core_text})")
    if best_gf >= minimum:
        return lib, core, best_gf
    load = os.getloadavg()[0]
    lines = [f"torch.mm reaches only {best_gf:.1f} GFLOP/s at 1024x1024 on {threads} threads (below {minimum:.0f}): "
             "PyTorch is not running on an optimized BLAS, so a comparison with it would flatter us.",
             f"  BLAS loaded by torch: {lib}{core_text}"]
    setup = ["    apt-get install -y libopenblas0-openmp",
             "    update-alternatives --set libblas.so.3-x86_64-linux-gnu "
             "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3",
             "  (tools/bench/setup-openblas.sh does both and measures again)."]
    coretype = ["  If OpenBLAS 0.3.21 misdetects the CPU (a generic, Zen or Haswell core on an AVX-512 machine), force "
                "its AVX-512 kernels:",
                "    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 tools/bench/side_by_side.py"]
    if "openblas" in lib:
        lines += ["  libblas.so.3 is OpenBLAS already."] + coretype + ["  If that does not help, check the alternative (as root):"] + setup
    else:
        lines += ["  Debian's python3-torch links libblas.so.3, which is the reference BLAS until you switch it. "
                  "As root:"] + setup + coretype
    if load > (os.cpu_count() or 1):
        lines.append(f"  Note: the load average is {load:.1f} on {os.cpu_count()} CPUs: other processes compete for "
                     "the cores; rerun on a quiet machine (or lower the bar with --min-blas-gflops and say so).")
    if smoke:
        log("warning (--smoke goes on): " + "\n".join(lines))
        return lib, core, best_gf
    print("\n".join(lines), file=sys.stderr)
    sys.exit(3)


def load_manifest(name):
    with open(os.path.join(BENCH, name, "manifest.json")) as f:
        return json.load(f)


def torch_workload(torch, workload, threads):
    """The PyTorch module of a workload with the ONNX initializers loaded by name, its input and its loss."""
    import onnx
    from onnx import numpy_helper
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(ROOT, "tools", "reference-models"))
    import models as M

    torch.set_num_threads(threads)
    manifest = load_manifest(workload["name"])
    torch.manual_seed(0)
    model = workload["build"](M)
    proto = onnx.load(os.path.join(BENCH, workload["name"], manifest["model"]))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    state = model.state_dict()
    loaded, wanted = 0, 0
    with torch.no_grad():
        for key, value in state.items():
            if not value.is_floating_point():
                continue
            wanted += 1
            if key in inits and tuple(inits[key].shape) == tuple(value.shape):
                value.copy_(torch.from_numpy(inits[key].copy()))
                loaded += 1
    model.train()
    gen = torch.Generator().manual_seed(0)
    shape = manifest["inputs"][0]["shape"]
    x = torch.rand(shape, generator=gen) * 2 - 1
    loss = manifest["loss"]
    if loss["kind"] == "cross-entropy":
        target = torch.randint(0, loss["labels"], (shape[0],), generator=gen)
        loss_fn, loss_flag = F.cross_entropy, "cross-entropy"
    elif loss["kind"] == "mse":
        target = torch.zeros(manifest["outputs"][0]["shape"])
        loss_fn, loss_flag = F.mse_loss, "mse"
    else:
        raise SystemExit(f"{workload['name']}: unknown loss {loss['kind']}")
    return model, x, target, loss_fn, loss_flag, f"{loaded}/{wanted}"


def torch_training(torch, model, x, target, loss_fn):
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)

    def forward():
        with torch.no_grad():
            loss_fn(model(x), target)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), target).backward()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), target).backward()
        opt.step()

    return forward, forward_backward, step


def torch_times(torch, workload, threads, warmup, steps):
    model, x, target, loss_fn, _, weights = torch_workload(torch, workload, threads)
    result = {"weights": weights}
    for key, fn in zip(("fwd", "fwdbwd", "step"), torch_training(torch, model, x, target, loss_fn)):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        result[key] = median(times)
    return result


def torch_child(name, threads, steps):
    """--torch-child: a training process of `steps` SGD steps, for its peak RSS."""
    torch = import_torch()
    workload = next(w for w in WORKLOADS if w["name"] == name)
    model, x, target, loss_fn, _, _ = torch_workload(torch, workload, threads)
    step = torch_training(torch, model, x, target, loss_fn)[2]
    for _ in range(steps):
        step()


# ---------------------------------------------------------------------------------------------------- our side

def dotnet(*args):
    return ["dotnet", CLI_DLL, *map(str, args)]


def run_capture(cmd, timeout=CHILD_TIMEOUT_S):
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return 124, "", f"error: timed out after {timeout} s"


# Runs argv[2:] and writes "exit-code ru_maxrss-KiB" of that child (os.wait4) to argv[1]. Linux carries a process's
# high-water RSS across fork and exec into the child's ru_maxrss, so a child of this torch-laden script would report at
# least our own RSS; this small launcher (started without site packages) keeps that floor at a few MB.
LAUNCHER = """import os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def peak_rss(cmd):
    """Runs cmd; returns (exit code, peak RSS in MB of that process, its output)."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as result:
        p = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, result.name, *cmd], cwd=ROOT, stdout=out,
                             stderr=subprocess.STDOUT)
        try:
            p.wait(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        out.seek(0)
        output = out.read().decode(errors="replace")
        fields = result.read().split()
        if p.returncode != 0 or len(fields) != 2:
            return (p.returncode or 1), 0.0, output
        return int(fields[0]), int(fields[1]) / 1024.0, output


BENCH_LINE = re.compile(r"^bench: forward_ms=(?P<fwd>[0-9.]+) forward_backward_ms=(?P<fwdbwd>[0-9.]+) "
                        r"step_ms=(?P<step>[0-9.]+) allocated_bytes_per_step=(?P<alloc>[0-9]+)$")
ORT_LINE = re.compile(r"^ort: forward_ms=(?P<ort>[0-9.]+)$")
GEMM_LINE = re.compile(r"^gemm: m=(?P<m>[0-9]+) n=(?P<n>[0-9]+) k=(?P<k>[0-9]+) ms=(?P<ms>[0-9.]+) "
                       r"gflops=(?P<gflops>[0-9.]+)(?: trans=(?P<trans>[nt]{2}))?$")


def our_times(model, loss, threads, warmup, steps):
    code, out, err = run_capture(dotnet("bench", model, "--loss", loss, "--warmup", warmup, "--steps", steps,
                                        "--threads", threads, "--ort"))
    lines = out.splitlines()
    bench = BENCH_LINE.match(lines[-1].strip()) if lines else None
    if code != 0 or bench is None:
        return {"error": first_line(err + "\n" + out)}
    result = {k: float(v) for k, v in bench.groupdict().items()}
    ort = next((ORT_LINE.match(l.strip()) for l in lines if ORT_LINE.match(l.strip())), None)
    result["ort"] = float(ort.group("ort")) if ort else None
    return result


def build():
    log(f"building {os.path.relpath(CLI_PROJECT, ROOT)} (Release)")
    code, out, err = run_capture(["dotnet", "build", "-c", "Release", CLI_PROJECT, "-v", "q", "-nologo"])
    if code != 0:
        print(out + err, file=sys.stderr)
        sys.exit(2)


# ---------------------------------------------------------------------------------------------------- tables

def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def markdown(header, rows):
    rows = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def workload_row(name, ours, torch_r, rss_ours, rss_torch):
    o, t = ours, torch_r
    slash = lambda d: " / ".join(fmt(d.get(k)) for k in ("fwd", "fwdbwd", "step"))
    short = lambda text: text if len(text) <= 110 else text[:109] + "…"
    ours_cell = short(o["error"]) if "error" in o else slash(o)
    torch_cell = short(t["error"]) if "error" in t else slash(t)
    ok = "error" not in o and "error" not in t
    ratios = " / ".join(fmt(ratio(o.get(k), t.get(k))) for k in ("fwd", "fwdbwd", "step")) if ok else "-"
    bwd = lambda d: None if "error" in d else ratio(d["fwdbwd"] - d["fwd"], d["fwd"])
    return [name, ours_cell, torch_cell, ratios, fmt(o.get("ort")), fmt(ratio(o.get("fwd"), o.get("ort"))),
            f"{fmt(bwd(o))} / {fmt(bwd(t))}", f"{rss_ours} / {rss_torch}",
            str(int(o["alloc"])) if "alloc" in o else "-", t.get("weights", "-")]


def rss_cell(result):
    code, mb, output = result
    return f"{mb:.0f}" if code == 0 else f"{mb:.0f} (exit {code})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny settings for CI: W1, 1 warm-up, 2 steps, small GEMMs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rss-steps", type=int, default=50)
    parser.add_argument("--gemm-repeat", type=int, default=7)
    parser.add_argument("--workloads", help="comma-separated names or prefixes (w1,w4); default all")
    parser.add_argument("--min-blas-gflops", type=float, default=MIN_BLAS_GFLOPS)
    parser.add_argument("--no-build", action="store_true", help="use the Release CLI as built")
    parser.add_argument("--dotnet-tiered", action="store_true",
                        help="keep .NET's tiered JIT for our runs (default: DOTNET_TieredCompilation=0, see README)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a workload row holds an error")
    parser.add_argument("--torch-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads <= 0 or args.steps <= 0 or args.warmup < 0 or args.rss_steps <= 0:
        parser.error("--threads, --steps and --rss-steps must be positive, --warmup non-negative")
    # Before torch loads: OpenMP and OpenBLAS read these once.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    # libgomp's threads spin between parallel regions; when the machine is busier than its CPU count a spinning thread
    # holds a core its partner needs and torch's small GEMMs slow down 10-100x. Sleeping waiters are then fairer.
    if "OMP_WAIT_POLICY" not in os.environ and os.getloadavg()[0] > (os.cpu_count() or 1):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if args.torch_child:
        return torch_child(args.torch_child, args.threads, args.steps)

    workloads = WORKLOADS
    sizes = [256, 512, 1024, 2048]
    if args.smoke:
        args.warmup, args.steps, args.rss_steps, args.gemm_repeat = 1, 2, 2, 2
        workloads, sizes = WORKLOADS[:1], [64, 128]
    if args.workloads:
        wanted = [w.strip() for w in args.workloads.split(",") if w.strip()]
        workloads = [w for w in workloads if any(w["name"].startswith(p) for p in wanted)]
        if not workloads:
            parser.error(f"no workload matches {args.workloads}")

    start_load = os.getloadavg()[0]
    torch = import_torch()
    torch.set_num_threads(args.threads)
    lib, core, blas_gflops = check_blas(torch, args.threads, args.min_blas_gflops, args.smoke)
    if not args.no_build:
        build()
    # With tiering, a method runs unoptimized (tier 0) for its first 30 calls: 5 warm-up steps leave `bench`'s first
    # phase (forward) timing tier-0 kernels. Fully optimized code from the first call makes 5 warm-ups enough.
    if not args.dotnet_tiered and "DOTNET_TieredCompilation" not in os.environ:
        os.environ["DOTNET_TieredCompilation"] = "0"

    rows, failures = [], 0
    for w in workloads:
        name, model = w["name"], os.path.join(BENCH, w["name"], "model.onnx")
        loss = load_manifest(name)["loss"]["kind"]
        log(f"{name}: ours (bench --warmup {args.warmup} --steps {args.steps} --ort)")
        ours = our_times(model, loss, args.threads, args.warmup, args.steps)
        log(f"{name}: torch")
        try:
            theirs = torch_times(torch, w, args.threads, args.warmup, args.steps)
        except Exception as e:  # a row, not the run
            theirs = {"error": f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        log(f"{name}: peak RSS of {args.rss_steps}-step training processes")
        rss_ours = rss_cell(peak_rss(dotnet("bench", model, "--loss", loss, "--warmup", 0, "--steps", args.rss_steps,
                                            "--threads", args.threads)))
        rss_torch = rss_cell(peak_rss([sys.executable, os.path.abspath(__file__), "--torch-child", name,
                                       "--steps", str(args.rss_steps), "--threads", str(args.threads)]))
        failures += "error" in ours or "error" in theirs
        rows.append(workload_row(name, ours, theirs, rss_ours, rss_torch))

    shapes = [(s, s, s, "nn", "square") for s in sizes]
    seen = {(m, n, k, t) for m, n, k, t, _ in shapes}
    for w in workloads:
        for m, n, k, t, role in w["gemm"]:
            if (m, n, k, t) not in seen:
                seen.add((m, n, k, t))
                shapes.append((m, n, k, t, f"{w['name'][:2].upper()} {role}"))
    log(f"GEMM: ours (bench-gemm, {len(shapes)} shapes) and torch.mm")
    spec = ",".join(f"{m}x{n}x{k}:{t}" for m, n, k, t, _ in shapes)
    code, out, err = run_capture(dotnet("bench-gemm", "--sizes", "", "--shapes", spec, "--threads", args.threads,
                                        "--repeat", args.gemm_repeat))
    ours_gemm = {}
    for line in out.splitlines():
        g = GEMM_LINE.match(line.strip())
        if g:
            ours_gemm[(int(g["m"]), int(g["n"]), int(g["k"]), g["trans"] or "nn")] = float(g["gflops"])
    gemm_error = None if code == 0 else first_line(err + out)
    gemm_rows = []
    for m, n, k, t, role in shapes:
        tg, _ = torch_gemm_gflops(torch, m, n, k, t, args.gemm_repeat)
        og = ours_gemm.get((m, n, k, t))
        gemm_rows.append([f"{m}x{n}x{k} {t}", role, fmt(og, 1) if og is not None else (gemm_error or "-"),
                          fmt(tg, 1), fmt(ratio(og, tg))])

    commit = run_capture(["git", "-C", ROOT, "log", "-1", "--format=%h %s"])[1].strip()[:80]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    load = os.getloadavg()
    print(f"# Backprop.Onnx vs PyTorch {torch.__version__} eager{' (--smoke)' if args.smoke else ''}")
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}")
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, load average (1 min) {start_load:.1f} at the start, "
          f"{load[0]:.1f} at the end")
    print(f"threads {args.threads}; torch BLAS {lib}{' (' + core + ')' if core else ''}, torch.mm 1024: "
          f"{blas_gflops:.0f} GFLOP/s (best of 10); OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}; "
          f"DOTNET_TieredCompilation={os.environ.get('DOTNET_TieredCompilation', '(default)')}")
    print(f"medians of {args.steps} steps after {args.warmup} warm-up; peak RSS of {args.rss_steps}-step processes; "
          "ratios are ours/torch (above 1: we are slower); bwd/fwd = (fwd+bwd - fwd) / fwd")
    print()
    print(markdown(["workload", "ours fwd / fwd+bwd / step ms", "torch fwd / fwd+bwd / step ms",
                    "ours/torch fwd / fwd+bwd / step", "ORT fwd ms", "ours/ORT fwd", "bwd/fwd ours / torch",
                    "peak RSS ours / torch MB", "ours allocated B/step", "torch weights from ONNX"], rows))
    print()
    print(f"GEMM float32, {args.threads} threads, median of {args.gemm_repeat} runs: GFLOP/s (ours/torch below 1: we are "
          "slower); nt = B transposed (Linear forward), tn = A transposed (weight gradient)")
    print()
    print(markdown(["m x n x k op", "where", "ours GFLOP/s", "torch.mm GFLOP/s", "ours/torch"], gemm_rows))
    if failures:
        log(f"{failures} workload row(s) hold an error")
    return 1 if args.strict and (failures or gemm_error) else 0


if __name__ == "__main__":
    sys.exit(main())
