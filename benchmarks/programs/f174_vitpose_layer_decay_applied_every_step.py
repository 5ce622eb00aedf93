"""A small ViTPose (ViT backbone, simple upsampling heatmap head) trained with AdamW behind a LayerDecayOptimizer wrapper that multiplies the learning rate by the layer-decay rate 0.75 at EVERY step instead of once: the rate warms up to 5e-4, then falls to 0 within a few dozen steps and the heatmaps stop improving.

Report: jaehyunnn/ViTPose_pytorch issue #20 "The learning rate warms up to the preset value during training and
  quickly becomes 0" ("The learning rate warms up to the preset value during training and quickly becomes 0, but the
  training is still ongoing"; a commenter: "you should set layer_decay_rate=1.0, rather than 0.75"; the maintainer:
  "`LayerDecayOptimizer` was incorrectly applying layer decay **every step** instead of **once at
  initialization**, causing LR to exponentially decay to zero") https://github.com/jaehyunnn/ViTPose_pytorch/issues/20
Setup: ViTPose-style top-down pose estimation on synthetic 32x24 crops (noisy background, 4 keypoints drawn as
coloured blobs: red, green, blue, white), target Gaussian heatmaps 32x24 with sigma 1.5; ViT backbone (patch 4, dim
64, depth 4, 4 heads, MLP 128, pre-LayerNorm blocks, learned position embedding), ViTPose's simple decoder (ReLU,
bilinear x4 upsampling, 3x3 conv to 4 heatmaps); JointsMSELoss with target weights (0.5 * MSE per joint); AdamW(lr
5e-4, betas (0.9, 0.999), weight_decay 0.1) over model.parameters(), wrapped in LayerDecayOptimizer(optimizer,
[0.75] * depth) whose step() does `group['lr'] *= rate` before optimizer.step(); a LambdaLR linear warm-up (ratio
0.001, 30 iterations, stepped while global_step < 30) and MultiStepLR([7], 0.1) per epoch; batch 32, 960 training /
256 validation crops, 8 epochs (240 steps); every 10 steps `loss` and `learning_rate`, per epoch val_loss and
val_pck (share of keypoints within 2 px by argmax).
Expected first: lr_decay_too_fast
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, the maintainer's fix: the layer decay applied once at initialisation, so 3.75e-4 after the
warm-up, 3.75e-5 after the milestone): loss 0.081 -> 0.0035, val_loss 0.0084 -> 0.0035 (still falling), val_pck
0.003 -> 0.63 (buggy: the same warm-up (the LambdaLR rewrites the rate during it), then 5e-4 * 0.75^k: 9e-8
after epoch 1, 3e-31 at the end; loss 0.081 -> 0.0073 within the warm-up, then flat at 0.0072-0.0075; val_loss
0.0084 -> 0.00731, the same to 5 decimals from epoch 1 to 7; val_pck 0.007) (checked; 43 s / 48 s wall, 37-38 s
CPU, on the 2-core machine shared by three helpers, OMP_NUM_THREADS=1).
"""

import math
import sys

import mlflow
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, MultiStepLR
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
H, W, K, SIGMA = 32, 24, 4, 1.5
COLOURS = torch.tensor([[1.0, -0.6, -0.6], [-0.6, 1.0, -0.6], [-0.6, -0.6, 1.0], [1.0, 1.0, 1.0]])
cfg = {
    "optimizer": {"lr": 5e-4, "betas": (0.9, 0.999), "weight_decay": 0.1, "paramwise_cfg": {"layer_decay_rate": 0.75}},
    "lr_config": {"warmup_iters": 30, "warmup_ratio": 0.001, "step": [7]},
    "model": {"backbone": {"depth": 4, "embed_dim": 64, "num_heads": 4, "patch_size": 4}},
    "total_epochs": 8,
}


def make_crops(n):
    ys, xs = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    joints = torch.stack([torch.randint(3, H - 3, (n, K)), torch.randint(3, W - 3, (n, K))], dim=-1).float()
    images = 0.4 * torch.randn(n, 3, H, W)
    heatmaps = torch.zeros(n, K, H, W)
    for k in range(K):
        dy = ys[None] - joints[:, k, 0, None, None]
        dx = xs[None] - joints[:, k, 1, None, None]
        blob = torch.exp(-(dx**2 + dy**2) / (2 * 1.2**2))
        images += blob[:, None] * COLOURS[k][None, :, None, None]
        heatmaps[:, k] = torch.exp(-(dx**2 + dy**2) / (2 * SIGMA**2))
    return images, heatmaps, joints


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViTPose(nn.Module):
    def __init__(self, depth, embed_dim, num_heads, patch_size):
        super().__init__()
        self.hp, self.wp = H // patch_size, W // patch_size
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.hp * self.wp, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads) for _ in range(depth))
        self.last_norm = nn.LayerNorm(embed_dim)
        self.keypoint_head = nn.Sequential(  # ViTPose's simple decoder: ReLU, bilinear x4 upsampling, 3x3 conv
            nn.ReLU(),
            nn.Upsample(scale_factor=patch_size, mode="bilinear", align_corners=False),
            nn.Conv2d(embed_dim, K, 3, padding=1),
        )

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.last_norm(x)
        x = x.transpose(1, 2).reshape(x.shape[0], -1, self.hp, self.wp)
        return self.keypoint_head(x)


class JointsMSELoss(nn.Module):
    def __init__(self, use_target_weight=True):
        super().__init__()
        self.criterion = nn.MSELoss()
        self.use_target_weight = use_target_weight

    def forward(self, output, target, target_weight):
        b = output.shape[0]
        heatmaps_pred = output.reshape(b, K, -1).split(1, 1)
        heatmaps_gt = target.reshape(b, K, -1).split(1, 1)
        loss = 0.0
        for idx in range(K):
            pred, gt = heatmaps_pred[idx].squeeze(1), heatmaps_gt[idx].squeeze(1)
            if self.use_target_weight:
                loss += 0.5 * self.criterion(pred * target_weight[:, idx], gt * target_weight[:, idx])
            else:
                loss += 0.5 * self.criterion(pred, gt)
        return loss / K


class LayerDecayOptimizer:
    def __init__(self, optimizer, layerwise_decay_rate):
        self.optimizer = optimizer
        self.layerwise_decay_rate = layerwise_decay_rate
        self.param_groups = optimizer.param_groups
        if FIX:  # the fix: the decay applied once, when the optimizer is built
            for i, group in enumerate(self.optimizer.param_groups):
                group["lr"] *= self.layerwise_decay_rate[i]
                group["initial_lr"] = group["lr"]

    def step(self, *args, **kwargs):
        if not FIX:
            for i, group in enumerate(self.optimizer.param_groups):
                group["lr"] *= self.layerwise_decay_rate[i]
        self.optimizer.step(*args, **kwargs)

    def zero_grad(self, *args, **kwargs):
        self.optimizer.zero_grad(*args, **kwargs)


def pck(output, joints, threshold=2.0):
    b = output.shape[0]
    flat = output.reshape(b, K, -1).argmax(-1)
    pred = torch.stack([flat // W, flat % W], dim=-1).float()
    return ((pred - joints).norm(dim=-1) <= threshold).float().mean().item()


train_x, train_y, _ = make_crops(960)
val_x, val_y, val_joints = make_crops(256)
train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=32, shuffle=True)
model = ViTPose(**cfg["model"]["backbone"])
criterion = JointsMSELoss(use_target_weight=True)
opt_cfg = cfg["optimizer"]
optimizer = torch.optim.AdamW(
    model.parameters(), lr=opt_cfg["lr"], betas=opt_cfg["betas"], weight_decay=opt_cfg["weight_decay"]
)
lr_mult = [opt_cfg["paramwise_cfg"]["layer_decay_rate"]] * cfg["model"]["backbone"]["depth"]
layerwise_optimizer = LayerDecayOptimizer(optimizer, lr_mult)
lr_scheduler = MultiStepLR(optimizer, cfg["lr_config"]["step"], gamma=0.1)
num_warmup_steps = cfg["lr_config"]["warmup_iters"]
warmup_factor = cfg["lr_config"]["warmup_ratio"]
warmup_scheduler = LambdaLR(
    optimizer, lr_lambda=lambda step: warmup_factor + (1.0 - warmup_factor) * step / num_warmup_steps
)

with mlflow.start_run():
    mlflow.log_params({"lr": opt_cfg["lr"], "layer_decay_rate": 0.75, "batch_size": 32, "epochs": 8})
    global_step = 0
    for epoch in range(cfg["total_epochs"]):
        model.train()
        for images, targets in train_loader:
            layerwise_optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, targets, torch.ones(images.shape[0], K, 1))
            loss.backward()
            layerwise_optimizer.step()
            if global_step < num_warmup_steps:
                warmup_scheduler.step()
            if global_step % 10 == 0:
                mlflow.log_metrics(
                    {"loss": loss.item(), "learning_rate": optimizer.param_groups[0]["lr"]}, step=global_step
                )
            global_step += 1
        lr_scheduler.step()
        model.eval()
        with torch.no_grad():
            val_out = model(val_x)
            val_loss = criterion(val_out, val_y, torch.ones(val_x.shape[0], K, 1)).item()
        val_pck = pck(val_out, val_joints)
        mlflow.log_metrics({"val_loss": val_loss, "val_pck": val_pck}, step=global_step)
        lr_now = optimizer.param_groups[0]["lr"]
        print(f"epoch {epoch} loss {loss.item():.6f} val_loss {val_loss:.6f} val_pck {val_pck:.3f} lr {lr_now:.2e}")
        assert math.isfinite(val_loss)
