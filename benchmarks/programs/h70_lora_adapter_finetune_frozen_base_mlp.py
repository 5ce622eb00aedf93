"""A LoRA fine-tune: a base MLP classifier pretrained on one task is frozen, its hidden Linear layers wrapped with low-rank adapters (A random, B zero), a new classification head added, and only the adapters and the head are trained on a related task.

Report: healthy, in the style of Sebastian Raschka's "Code LoRA from Scratch" (lightning.ai, the
  `LoRALayer` with `A = torch.randn(in_dim, rank) / sqrt(rank)`, `B = torch.zeros(rank, out_dim)`,
  `alpha * (x @ A @ B)` added to a frozen `nn.Linear` by `LinearWithLoRA`; every base parameter set to
  `requires_grad = False`, the adapters and the new classifier head trained with Adam)
  https://lightning.ai/lightning-ai/studios/code-lora-from-scratch , after Hu et al. 2021, "LoRA:
  Low-Rank Adaptation of Large Language Models"
Setup: base MLP 64-256-256-10 pretrained in the script (no logging, as a checkpoint loaded from another
job would be) on 6000 samples of task A; task B shares the inputs' hidden structure but has a new
8-class readout, a small input shift and noisy labels (logit noise; a ceiling near 60%); 4000 training /
1000 validation samples; the three hidden
Linear layers wrapped with rank 8, alpha 16 adapters, a new Linear(256, 8) head, base frozen (83% of
the parameters), Adam(lr=5e-4) on the adapters and head, batch 64, 15 epochs; per-epoch train_loss,
val_loss and val_accuracy with mlflow.log_metrics, and the trainable-parameter count as a param.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: val_loss 1.470 -> 1.236 (best 1.222 at epoch 12, noisy +-0.05 from epoch to epoch),
val_accuracy 0.458 -> 0.570 (best 0.578), train_loss 1.627 -> 0.739 (the adapters fit some label noise;
validation no longer improves much over the last 5 epochs but does not rise); base model 89% on task A
(30 s wall, 17 s CPU).
"""

import math

import mlflow
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
D_IN = 64

# ---- two related tasks from one hidden structure ----
mixing = torch.randn(D_IN, 16)
readout_a, readout_b = torch.randn(16, 10), torch.randn(16, 8)
shift_b = 0.3 * torch.randn(D_IN)


def task(n, readout, shift=0.0, noise=0.8):
    x = torch.randn(n, D_IN) + shift
    h = torch.tanh(x @ mixing / math.sqrt(D_IN) * 2.0)
    logits = h @ readout * 2.5 + noise * torch.randn(n, readout.shape[1])
    return x, logits.argmax(1)


x_a, y_a = task(6000, readout_a)
x_train, y_train = task(4000, readout_b, shift_b, noise=0.4)
x_val, y_val = task(1000, readout_b, shift_b, noise=0.4)

mlflow.start_run()  # one run for the job: the silent pretraining, then the logged fine-tune
base = nn.Sequential(
    nn.Linear(D_IN, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
)
opt = torch.optim.Adam(base.parameters(), lr=1e-3)
for epoch in range(8):  # "pretraining" on task A
    for idx in torch.randperm(6000).split(128):
        opt.zero_grad()
        F.cross_entropy(base(x_a[idx]), y_a[idx]).backward()
        opt.step()
with torch.no_grad():
    print("base model on task A:", (base(x_a).argmax(1) == y_a).float().mean().item())


class LoRALayer(nn.Module):
    def __init__(self, in_dim, out_dim, rank, alpha):
        super().__init__()
        std_dev = 1 / torch.sqrt(torch.tensor(rank).float())
        self.A = nn.Parameter(torch.randn(in_dim, rank) * std_dev)
        self.B = nn.Parameter(torch.zeros(rank, out_dim))
        self.alpha = alpha

    def forward(self, x):
        return self.alpha * (x @ self.A @ self.B)


class LinearWithLoRA(nn.Module):
    def __init__(self, linear, rank, alpha):
        super().__init__()
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha)

    def forward(self, x):
        return self.linear(x) + self.lora(x)


for param in base.parameters():
    param.requires_grad = False
layers = list(base.children())[:-1]  # drop task A's head
for i in (0, 2, 4):
    layers[i] = LinearWithLoRA(layers[i], rank=8, alpha=16)
model = nn.Sequential(*layers, nn.Linear(256, 8))
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
total = sum(p.numel() for p in model.parameters())
print(f"trainable {trainable} of {total} parameters")

optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-4)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)

mlflow.log_params(
    {
        "lora_rank": 8,
        "lora_alpha": 16,
        "lr": 5e-4,
        "batch_size": 64,
        "epochs": 15,
        "trainable_params": trainable,
        "total_params": total,
    }
)
for epoch in range(15):
    model.train()
    running, n = 0.0, 0
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        running += loss.item() * len(x)
        n += len(x)
    model.eval()
    with torch.no_grad():
        out = model(x_val)
        val_loss = F.cross_entropy(out, y_val).item()
        val_accuracy = (out.argmax(1) == y_val).float().mean().item()
    mlflow.log_metrics({"train_loss": running / n, "val_loss": val_loss, "val_accuracy": val_accuracy}, step=epoch)
    print(f"epoch {epoch:02d} train_loss {running / n:.4f} val_loss {val_loss:.4f} val_accuracy {val_accuracy:.3f}")
mlflow.end_run()
