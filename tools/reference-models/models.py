"""PyTorch modules exported to onnx-models/ by generate.py.

Every module here is small and built from stock torch.nn layers, so that the exported ONNX graph is what
torch.onnx.export produces for ordinary models. Weights come from PyTorch's default initialisation under a fixed
seed (generate.py seeds before construction); constant initialisations (BatchNorm/LayerNorm affine, running
statistics, zero biases) are replaced with random values by `randomize_constant_inits` because torch.onnx.export
merges initializers with identical contents, which would lose parameter names.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):
    """Fully connected ReLU network: sizes[0] -> ... -> sizes[-1] (no activation after the last layer)."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = F.relu(x)
        return x


class LeNet(nn.Module):
    """LeNet-5-type CNN on 1x28x28: Conv 6@5x5 pad 2, ReLU, MaxPool 2, Conv 16@5x5, ReLU, MaxPool 2,
    Linear 400-120-84-10 with ReLU."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3x3 Conv+BN, ReLU between, residual add, ReLU; a 1x1 Conv+BN
    projection on the shortcut when the stride or the width changes."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + s)


class ResNetSmall(nn.Module):
    """Stem Conv 16 + BN + ReLU, BasicBlock 16, BasicBlock 32 (stride 2, 1x1 projection), global average pool,
    Linear 10."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.block1 = BasicBlock(16, 16)
        self.block2 = BasicBlock(16, 32, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.block2(self.block1(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class Transformer(nn.Module):
    """One nn.TransformerEncoderLayer (batch_first)."""

    def __init__(self, d_model, nhead, ff, activation):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model, nhead, ff, dropout=0.0, activation=activation,
                                                batch_first=True)

    def forward(self, x):
        return self.layer(x)


class EmbeddingBag(nn.Module):
    """nn.Embedding(50, 8), mean over the tokens, Linear 8-3."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(50, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, tokens):
        return self.fc(self.embedding(tokens).mean(dim=1))


class SharedWeight(nn.Module):
    """The same Linear applied twice with tanh between: the weight's gradient accumulates over two uses."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(torch.tanh(self.fc(x)))


class ReshapeOps(nn.Module):
    """Split, chunk, permute, strided slicing, view/reshape and concat around a little arithmetic, two outputs.
    x: [N, 6, 8] -> (y [N, 2, 11], s [N, 11])."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(4, 4))
        self.shift = nn.Parameter(torch.randn(11))

    def forward(self, x):
        n = x.shape[0]
        a, b = torch.split(x, [2, 4], dim=1)           # [N,2,8], [N,4,8]
        c, d = torch.chunk(b, 2, dim=2)                 # [N,4,4] twice
        e = (c * self.scale + d).permute(0, 2, 1)       # [N,4,4]
        g = a[:, :, 1:7:2] * 2.0                        # [N,2,3] (strided slice)
        h = torch.cat([e.reshape(n, -1), g.view(n, -1)], dim=1)   # [N,22]
        y = torch.tanh(h.view(n, 2, 11) + self.shift)   # [N,2,11]
        s = y.transpose(1, 2).sum(dim=2) - x[:, -1, :].sum(dim=1, keepdim=True)  # [N,11]
        return y, s


class GroupedConv(nn.Module):
    """A grouped Conv (groups 2, stride 2) and a depthwise Conv (groups = channels, asymmetric stride, padding
    and dilation), tanh between, mean over the spatial axes. x: [N, 4, 11, 11] -> [N, 8]."""

    def __init__(self):
        super().__init__()
        self.grouped = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
        self.depthwise = nn.Conv2d(8, 8, 3, stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=8)

    def forward(self, x):
        return self.depthwise(torch.tanh(self.grouped(x))).mean(dim=(2, 3))


@torch.no_grad()
def randomize_constant_inits(model, gen):
    """Replaces constant initial values with seeded random ones: norm-layer affine parameters and running
    statistics, and any parameter whose entries are all equal (zero biases of MultiheadAttention)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=gen))
    for name, p in model.named_parameters():
        if p.numel() > 1 and bool((p == p.flatten()[0]).all()):
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
