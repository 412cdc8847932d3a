#!/usr/bin/python3
"""Exports the reference models of onnx-models/ with PyTorch and writes their PyTorch reference data.

Run with Debian's interpreter (python3-torch 1.13, python3-onnx 1.12):

    /usr/bin/python3 tools/reference-models/generate.py --out onnx-models

Everything is seeded and single-threaded, so a rerun rewrites the same bytes (`git status` stays clean).

Per gradient-reference model, onnx-models/<name>/ holds
    model.onnx            float32, torch.onnx.export(do_constant_folding=False), parameters as initializers
                          named by their state_dict names (verified below)
    inputs/<input>.pb     TensorProto, float32 (integer inputs int64)
    cotangents/<out>.pb   seeded random cotangent per output, float64
    outputs/<out>.pb      PyTorch float64 forward outputs (model.double(), inputs cast to double)
    grads/<tensor>.pb     PyTorch float64 VJP (torch.autograd.grad with the cotangents) for every parameter
                          (named as its ONNX initializer) and every float input
    manifest.json         names, shapes, dtypes, file lists, tolerance targets, op histogram
lenet_fashion/ and bench/<workload>/ hold model.onnx and manifest.json only.
onnx.reference does not exist in onnx 1.12 and ONNX Runtime is not installed for Python here: the C# tests
compare the executor with these references.
"""
import argparse
import copy
import io
import json
import os
import re
import shutil
import sys
import warnings
from collections import Counter

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models as M  # noqa: E402

TOLERANCE = {
    "metric": "per tensor: max|actual - expected| <= rel * max|expected|",
    "float64": {"rel": 1e-6},
    "float32": {"rel": 1e-3},
}
TRAINING = torch.onnx.TrainingMode.TRAINING
PRESERVE = torch.onnx.TrainingMode.PRESERVE


def safe_name(name):
    """The file name for a value, as Backprop.Onnx's TensorFiles.SafeFileName makes it."""
    s = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return "_" + s if s in ("", ".", "..") else s


def export(model, args, input_names, output_names, opset, train, dynamic_batch):
    """torch.onnx.export to bytes, then onnx.checker (full check with shape inference).

    An eval-mode export uses TrainingMode.PRESERVE on a model in eval mode, not TrainingMode.EVAL: with EVAL,
    torch 1.13 runs its eval peephole pass (even with do_constant_folding=False), which folds each
    BatchNormalization into the preceding Conv and replaces both layers' parameters by anonymous initializers
    (onnx::Conv_62, ...). For models without Conv+BatchNormalization both modes give the same bytes."""
    model.train(train)
    training = TRAINING if train else PRESERVE
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {n: {0: "batch"} for n in input_names + output_names}
    buf = io.BytesIO()
    torch.onnx.export(model, args, buf, export_params=True, opset_version=opset, do_constant_folding=False,
                      training=training, keep_initializers_as_inputs=False, input_names=input_names,
                      output_names=output_names, dynamic_axes=dynamic_axes)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    graph_inputs = [i.name for i in proto.graph.input]
    graph_outputs = [o.name for o in proto.graph.output]
    if graph_inputs != input_names or graph_outputs != output_names:
        raise SystemExit(f"export renamed the graph's values: inputs {graph_inputs}, outputs {graph_outputs}")
    return buf.getvalue(), proto


def map_initializers(proto, model, what):
    """Maps each PyTorch parameter (and float buffer) to the ONNX initializer of the same name and checks that the
    values are identical; any parameter without its initializer, or initializer without its tensor, is fatal."""
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    params = dict(model.named_parameters())
    buffers = {k: v for k, v in model.named_buffers() if v.is_floating_point()}
    for name, tensor in list(params.items()) + list(buffers.items()):
        if name not in inits:
            raise SystemExit(f"{what}: '{name}' has no ONNX initializer of that name (initializers: {sorted(inits)})")
        if not np.array_equal(inits[name], tensor.detach().numpy()):
            raise SystemExit(f"{what}: initializer '{name}' differs from the PyTorch tensor of that name")
    extra = sorted(set(inits) - set(params) - set(buffers))
    if extra:
        raise SystemExit(f"{what}: initializers with no PyTorch parameter or buffer: {extra}")
    return list(params), [b for b in buffers if b in inits]


def op_histogram(proto):
    counts = Counter(n.op_type for n in proto.graph.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def graph_shape(value_info):
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in dims]


def vjp(model, inputs, input_names, cotangents, train, dtype):
    """Forward outputs, and the VJP of the outputs with the cotangents for every parameter and float input (by
    parameter or input name), with the model and the float inputs cast to dtype."""
    m = copy.deepcopy(model).to(dtype).train(train)
    xs = [x.detach().to(dtype).clone().requires_grad_() if x.is_floating_point() else x for x in inputs]
    outs = m(*xs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    wrt = list(m.named_parameters()) + [(n, x) for n, x in zip(input_names, xs) if x.is_floating_point()]
    grads = torch.autograd.grad(outs, [t for _, t in wrt], grad_outputs=[c.to(dtype) for c in cotangents])
    return [o.detach() for o in outs], {n: g.detach() for (n, _), g in zip(wrt, grads)}


def rel_error(actual, expected):
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    diff = float((actual.double() - expected).abs().max()) if expected.numel() else 0.0
    return diff / scale if scale > 0 else diff


def write_tensor(folder, sub, name, array):
    rel = f"{sub}/{safe_name(name)}.pb"
    os.makedirs(os.path.join(folder, sub), exist_ok=True)
    with open(os.path.join(folder, rel), "wb") as f:
        f.write(numpy_helper.from_array(np.ascontiguousarray(array), name).SerializeToString())
    return rel


def to_json(obj, indent=0):
    """Indented JSON with lists of scalars (shapes, file lists) on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {to_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(inner + to_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def write_json(path, obj):
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(to_json(obj) + "\n")


def fresh_folder(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def value_entry(name, dtype, shape, graph_vi):
    return {"name": name, "dtype": dtype, "shape": list(shape), "graph_shape": graph_shape(graph_vi)}


def export_description(train, dynamic_batch):
    mode = "TrainingMode.TRAINING" if train else "TrainingMode.PRESERVE on an eval-mode model"
    batch = "dynamic batch axis 'batch'" if dynamic_batch else "fixed batch"
    return f"torch {torch.__version__} torch.onnx.export({mode}, do_constant_folding=False), {batch}"


def notes(model, spec, train):
    """Export quirks a consumer of the model must know."""
    out = list(spec.get("notes", []))
    if train and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        out.append("BatchNormalization runs with training_mode=1 (batch statistics, biased variance); its "
                   "running_mean/running_var initializers hold the values after the exporter's traced forward pass "
                   "(one update, ONNX momentum 0.9, from the export input); they do not affect the outputs or "
                   "gradients in train mode")
    if train and any(isinstance(m, torch.nn.Dropout) for m in model.modules()):
        out.append("nn.Dropout(p=0) is exported as Dropout(ratio=0, training_mode=true) nodes: identity "
                   "with an unused mask output")
    return out


def gradient_reference(out_dir, spec):
    """Exports one model and writes its PyTorch float64 references."""
    name, seed = spec["name"], spec["seed"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = spec["build"]()
    M.randomize_constant_inits(model, gen)
    model.eval()
    train = spec.get("train", False)
    inputs = [make() for make in spec["inputs"].values()]
    input_names, output_names = list(spec["inputs"]), spec["outputs"]

    exported = copy.deepcopy(model)
    data, proto = export(exported, tuple(inputs), input_names, output_names, spec["opset"],
                         train, spec.get("dynamic_batch", True))
    param_names, buffer_names = map_initializers(proto, exported, name)

    with torch.no_grad():
        outs = copy.deepcopy(model).double().train(train)(*[x.double() if x.is_floating_point() else x
                                                             for x in inputs])
    cotangents = [torch.randn(o.shape, generator=gen, dtype=torch.float64)
                  for o in (outs if isinstance(outs, tuple) else (outs,))]
    outs64, grad_of = vjp(model, inputs, input_names, cotangents, train, torch.float64)
    outs32, grads32 = vjp(model, inputs, input_names, cotangents, train, torch.float32)
    if list(grad_of)[:len(param_names)] != param_names:
        raise SystemExit(f"{name}: parameters {list(grad_of)} are not the exported {param_names}")
    float32_error = max([rel_error(a, e) for a, e in zip(outs32, outs64)] +
                        [rel_error(grads32[n], grad_of[n]) for n in grad_of])
    if float32_error > TOLERANCE["float32"]["rel"]:
        raise SystemExit(f"{name}: PyTorch float32 misses the float32 tolerance itself ({float32_error:.3g})")

    folder = os.path.join(out_dir, name)
    fresh_folder(folder)
    with open(os.path.join(folder, "model.onnx"), "wb") as f:
        f.write(data)
    files = {"inputs": [], "cotangents": [], "outputs": [], "grads": []}
    manifest_inputs = []
    for n, x, vi in zip(input_names, inputs, proto.graph.input):
        entry = value_entry(n, "float32" if x.is_floating_point() else "int64", x.shape, vi)
        entry["file"] = write_tensor(folder, "inputs", n, x.numpy())
        files["inputs"].append(entry["file"])
        if n in grad_of:
            entry["grad"] = write_tensor(folder, "grads", n, grad_of[n].numpy())
            files["grads"].append(entry["grad"])
        manifest_inputs.append(entry)
    manifest_outputs = []
    for n, o, c, vi in zip(output_names, outs64, cotangents, proto.graph.output):
        entry = value_entry(n, "float32", o.shape, vi)
        entry["reference"] = write_tensor(folder, "outputs", n, o.numpy())
        entry["cotangent"] = write_tensor(folder, "cotangents", n, c.numpy())
        files["outputs"].append(entry["reference"])
        files["cotangents"].append(entry["cotangent"])
        manifest_outputs.append(entry)
    params = dict(model.named_parameters())
    manifest_params = []
    for n in param_names:
        entry = {"name": n, "torch_name": n, "dtype": "float32", "shape": list(params[n].shape),
                 "grad": write_tensor(folder, "grads", n, grad_of[n].numpy())}
        files["grads"].append(entry["grad"])
        manifest_params.append(entry)
    buffers = dict(model.named_buffers())
    manifest = {
        "name": name,
        "kind": "gradient-reference",
        "description": spec["description"],
        "opset": spec["opset"],
        "mode": "train" if train else "eval",
        "export": export_description(train, spec.get("dynamic_batch", True)),
        "notes": notes(model, spec, train),
        "model": "model.onnx",
        "inputs": manifest_inputs,
        "outputs": manifest_outputs,
        "parameters": manifest_params,
        "buffers": [{"name": b, "dtype": "float32", "shape": list(buffers[b].shape)} for b in buffer_names],
        "files": files,
        "tolerance": TOLERANCE,
        "torch_float32_max_rel_error": float(f"{float32_error:.3g}"),
        "op_histogram": op_histogram(proto),
    }
    write_json(os.path.join(folder, "manifest.json"), manifest)
    return folder, proto


def model_only(out_dir, spec):
    """Exports a model without reference data (the Fashion-MNIST LeNet and the benchmark workloads)."""
    name, seed = spec["name"], spec["seed"]
    torch.manual_seed(seed)
    model = spec["build"]()
    if spec.get("randomize", False):
        M.randomize_constant_inits(model, torch.Generator().manual_seed(seed + 1))
    model.eval()
    inputs = [make() for make in spec["inputs"].values()]
    input_names, output_names = list(spec["inputs"]), spec["outputs"]
    exported = copy.deepcopy(model)
    data, proto = export(exported, tuple(inputs), input_names, output_names, spec["opset"],
                         spec["train"], spec["dynamic_batch"])
    param_names, buffer_names = map_initializers(proto, exported, name)
    with torch.no_grad():
        outs = copy.deepcopy(model).train(spec["train"])(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    folder = os.path.join(out_dir, name)
    fresh_folder(folder)
    with open(os.path.join(folder, "model.onnx"), "wb") as f:
        f.write(data)
    params, buffers = dict(model.named_parameters()), dict(model.named_buffers())
    manifest = {
        "name": os.path.basename(name),
        "kind": spec["kind"],
        "description": spec["description"],
        "opset": spec["opset"],
        "mode": "train" if spec["train"] else "eval",
        "export": export_description(spec["train"], spec["dynamic_batch"]),
        "notes": notes(model, spec, spec["train"]),
        "model": "model.onnx",
        "inputs": [value_entry(n, "float32", x.shape, vi) for n, x, vi in zip(input_names, inputs, proto.graph.input)],
        "outputs": [value_entry(n, "float32", o.shape, vi) for n, o, vi in zip(output_names, outs, proto.graph.output)],
        "parameters": [{"name": n, "torch_name": n, "dtype": "float32", "shape": list(params[n].shape)}
                       for n in param_names],
        "buffers": [{"name": b, "dtype": "float32", "shape": list(buffers[b].shape)} for b in buffer_names],
        "parameter_count": sum(params[n].numel() for n in param_names),
        "loss": spec["loss"],
        "op_histogram": op_histogram(proto),
    }
    write_json(os.path.join(folder, "manifest.json"), manifest)
    return folder, proto


def randn(*shape, seed):
    return lambda: torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def tokens(seed):
    def make():
        t = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(seed))
        t[1, 4] = t[0, 1]  # a repeated id: its embedding row's gradient sums over the uses
        t[1, 5] = t[1, 4]
        return t
    return make


GRADIENT_MODELS = [
    dict(name="mlp", seed=101, opset=13, build=lambda: M.Mlp([20, 16, 8, 4]),
         inputs={"x": randn(3, 20, seed=1101)}, outputs=["y"],
         description="MLP 20-16-8-4 with ReLU (Gemm, Relu), batch 3"),
    dict(name="lenet", seed=102, opset=13, build=M.LeNet,
         inputs={"x": randn(2, 1, 28, 28, seed=1102)}, outputs=["logits"],
         description="LeNet-5-type CNN on 1x28x28: Conv 6@5x5 pad 2, ReLU, MaxPool 2, Conv 16@5x5, ReLU, "
                     "MaxPool 2, Linear 400-120-84-10 with ReLU, batch 2"),
    dict(name="resnet_small", seed=103, opset=13, build=M.ResNetSmall,
         inputs={"x": randn(2, 3, 16, 16, seed=1103)}, outputs=["logits"],
         description="Small ResNet on 3x16x16 in eval mode (BatchNormalization with random fixed running "
                     "statistics): stem Conv 16 + BN + ReLU, BasicBlock 16, BasicBlock 32 (stride 2, 1x1 "
                     "projection), global average pool, Linear 10, batch 2"),
    dict(name="resnet_small_train", seed=103, opset=14, train=True, build=M.ResNetSmall,
         inputs={"x": randn(2, 3, 16, 16, seed=1103)}, outputs=["logits"],
         description="resnet_small exported with TrainingMode.TRAINING (opset 14: BatchNormalization "
                     "training_mode=1, batch statistics); references computed in train mode"),
    dict(name="transformer", seed=104, opset=13, build=lambda: M.Transformer(32, 4, 64, "gelu"),
         inputs={"x": randn(2, 5, 32, seed=1104)}, outputs=["y"],
         description="nn.TransformerEncoderLayer(d_model 32, 4 heads, ff 64, dropout 0, batch_first, gelu -> "
                     "Erf), LayerNorm decomposed at opset 13, batch 2, seq 5"),
    dict(name="embedding", seed=105, opset=13, build=M.EmbeddingBag,
         inputs={"tokens": tokens(1105)}, outputs=["y"],
         description="nn.Embedding(50, 8) (Gather) + mean over tokens + Linear 8-3; int64 token ids [2,6] "
                     "with repeated ids"),
    dict(name="shared_weight", seed=106, opset=13, build=M.SharedWeight,
         inputs={"x": randn(3, 8, seed=1106)}, outputs=["y"],
         description="One Linear 8-8 applied twice with tanh between (one initializer used by two Gemm nodes)"),
    dict(name="reshape_ops", seed=107, opset=13, build=M.ReshapeOps,
         inputs={"x": randn(2, 6, 8, seed=1107)}, outputs=["y", "s"],
         description="Split (torch.split, torch.chunk), Transpose (permute), strided Slice, Reshape (view), "
                     "Concat, elementwise arithmetic, two outputs; x [2,6,8] -> y [2,2,11], s [2,11]"),
    dict(name="grouped_conv", seed=108, opset=13, build=M.GroupedConv,
         inputs={"x": randn(2, 4, 11, 11, seed=1108)}, outputs=["y"],
         description="Grouped Conv (groups 2, stride 2, pad 1), tanh, depthwise Conv (groups 8, stride (1,2), "
                     "pads (2,1), dilation (2,1)), mean over H and W; x [2,4,11,11] -> y [2,8]"),
]

CROSS_ENTROPY_10 = {"kind": "cross-entropy", "labels": 10, "label_dtype": "int64"}

MODEL_ONLY = [
    dict(name="lenet_fashion", kind="model", seed=109, opset=13, train=False, dynamic_batch=True,
         build=M.LeNet, inputs={"input": randn(1, 1, 28, 28, seed=1109)}, outputs=["logits"],
         loss=CROSS_ENTROPY_10,
         description="LeNet-5-type CNN with seeded PyTorch default initial weights, to train on Fashion-MNIST: "
                     "input [N,1,28,28] float, logits [N,10]"),
    dict(name="bench/w1_mlp", kind="benchmark", seed=201, opset=17, train=True, dynamic_batch=False,
         build=lambda: M.Mlp([784, 512, 256, 10]), inputs={"input": randn(128, 784, seed=1201)},
         outputs=["logits"], loss=CROSS_ENTROPY_10,
         description="W1: MLP 784-512-256-10 ReLU, batch 128"),
    dict(name="bench/w2_lenet", kind="benchmark", seed=202, opset=17, train=True, dynamic_batch=False,
         build=M.LeNet, inputs={"input": randn(64, 1, 28, 28, seed=1202)}, outputs=["logits"],
         loss=CROSS_ENTROPY_10, description="W2: LeNet-5-type CNN on 1x28x28, batch 64"),
    dict(name="bench/w3_resnet", kind="benchmark", seed=203, opset=17, train=True, dynamic_batch=False,
         build=M.ResNetSmall, randomize=True, inputs={"input": randn(32, 3, 32, 32, seed=1203)},
         outputs=["logits"], loss=CROSS_ENTROPY_10,
         description="W3: small ResNet on 3x32x32 (stem Conv 16 + BN + ReLU, BasicBlock 16, BasicBlock 32 "
                     "stride 2, global average pool, Linear 10), BatchNormalization in training mode, batch 32"),
    dict(name="bench/w4_transformer", kind="benchmark", seed=204, opset=17, train=True,
         dynamic_batch=False, build=lambda: M.Transformer(128, 4, 512, "relu"), randomize=True,
         inputs={"input": randn(16, 64, 128, seed=1204)}, outputs=["output"],
         loss={"kind": "mse", "target_shape": [16, 64, 128]},
         description="W4: nn.TransformerEncoderLayer(d_model 128, nhead 4, ff 512, dropout 0, batch_first, "
                     "relu) on [16,64,128]"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="onnx-models", help="output folder (default: onnx-models)")
    parser.add_argument("--only", nargs="*", help="model names to regenerate (default: all)")
    args = parser.parse_args()
    try:
        import onnx.reference  # noqa: F401
        print("note: onnx.reference is available but unused", file=sys.stderr)
    except ImportError:
        pass
    # A train-mode export drops BatchNorm's num_batches_tracked += 1 (a buffer ONNX has no use for) and says so.
    warnings.filterwarnings("ignore", message=".*Removing mutation from node aten::add_ on block input: "
                            "'.*num_batches_tracked'.*")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for spec in GRADIENT_MODELS + MODEL_ONLY:
        if args.only and spec["name"] not in args.only:
            continue
        make = gradient_reference if spec in GRADIENT_MODELS else model_only
        folder, proto = make(args.out, spec)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
        ops = ", ".join(f"{k} {v}" for k, v in op_histogram(proto).items())
        print(f"{spec['name']}: {size} bytes; {ops}")


if __name__ == "__main__":
    main()
