#!/usr/bin/env bash
# The main job: train the imported LeNet-5-type CNN (onnx-models/lenet_fashion, exported by PyTorch with random initial
# weights) on Fashion-MNIST with Backprop.Onnx, export the trained ONNX file, and measure its test accuracy with
# ONNX Runtime. Works from a fresh clone on Debian 12 with the .NET 10 SDK; installs the dataset if it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=/usr/share/datasets/fashion-mnist
if [ ! -f "$data/t10k-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST not found in $data: installing Debian's dataset-fashion-mnist"
  if [ "$(id -u)" -eq 0 ]; then apt-get update -q && apt-get install -y -q dataset-fashion-mnist; else sudo apt-get update -q && sudo apt-get install -y -q dataset-fashion-mnist; fi
fi
mkdir -p out
dotnet build tools/Backprop.Onnx.Cli -c Release -v q -nologo
cli=tools/Backprop.Onnx.Cli/bin/Release/net10.0/backprop-onnx.dll
dotnet "$cli" train onnx-models/lenet_fashion/model.onnx --data "$data" --epochs "${EPOCHS:-5}" --out out/lenet_fashion_trained.onnx "$@"
dotnet "$cli" evaluate out/lenet_fashion_trained.onnx --data "$data" --runtime ort
