"""A CenterNet-style keypoint heatmap head trained with the CornerNet focal loss (summed over pixels, divided by the number of objects), its last conv's bias left at PyTorch's default instead of the focal-loss prior -2.19: every pixel starts at p ~ 0.5, the ~1000 background pixels per image make the first loss ~30x what it should be, and the first updates crush the whole heatmap.

Report: yjh0410/CenterNet-Lite pull request #14 "Smart bias initialization for class imbalance problem" ("This
  initialization method was proposed in Focal Loss paper. You can check the norm of loss before and after
  this initialization method.") https://github.com/yjh0410/CenterNet-Lite/pull/14
Setup: 1x32x32 synthetic images with 1-3 bright blobs (objects) among dimmer elongated distractors under noise;
target heatmap = a Gaussian (sigma 1.5) at each object centre, 1 at the centre; a fully convolutional net
Conv(1,24)-BN-ReLU x4 (dilations 1,2,4,1) + Conv(24,24)-ReLU-Conv(24,1,1) heatmap head with sigmoid;
CornerNet/CenterNet focal loss (alpha 2, beta 4, summed, divided by the number of objects); SGD(lr=0.01,
momentum=0.9, weight_decay=1e-4), batch 32, 800 training / 200 validation images, 8 epochs; `loss` every 10
steps, per epoch val_loss and val_recall (objects whose centre is hit, within 2 px, by one of the image's
top-k 3x3-NMS peaks with k = its object count).
Expected first: initial_loss_mismatch
Acceptable in top 3: bad_weight_init, class_imbalance
Symptom: plateau
Fixed (--fix, `self.hm[-1].bias.data.fill_(-2.19)`, sigmoid(-2.19) = 0.1, as the pull request adds): first
loss 2.42, loss 0.005 and val_loss 0.45 -> 0.009 after 8 epochs, val_recall 1.00 from the first epoch (buggy:
first loss 78, then the first updates push every pixel to the clamp at p = 1e-4 (CenterNet's `_sigmoid`
clamp, whose gradient is 0 there): loss and val_loss exactly 9.2085 = -ln(1e-4) from step 10 to the end,
val_recall 0.23, the top-k of a constant heatmap) (checked; buggy 56 s wall / 39 s CPU, fixed 61 s / 37 s,
OMP_NUM_THREADS=1, 2 shared cores).
"""

import sys

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
S = 32
yy, xx = np.mgrid[0:S, 0:S]


def scene():
    img = rng.normal(0, 0.25, (S, S))
    hm = np.zeros((S, S))
    centres = []
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.integers(3, S - 3, 2)
        centres.append((cy, cx))
        img += 1.2 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.3**2))
        hm = np.maximum(hm, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.5**2)))
    for _ in range(int(rng.integers(1, 4))):  # elongated distractors
        cy, cx = rng.integers(0, S, 2)
        img += 0.8 * np.exp(-((yy - cy) ** 2) / (2 * 0.8**2) - ((xx - cx) ** 2) / (2 * 5.0**2))
    return img.astype(np.float32), hm.astype(np.float32), len(centres)


def dataset(n):
    imgs, hms, counts = zip(*(scene() for _ in range(n)))
    return torch.tensor(np.stack(imgs))[:, None], torch.tensor(np.stack(hms))[:, None], torch.tensor(counts)


train_x, train_hm, train_k = dataset(800)
val_x, val_hm, val_k = dataset(200)


def block(cin, cout, d):
    return [nn.Conv2d(cin, cout, 3, padding=d, dilation=d), nn.BatchNorm2d(cout), nn.ReLU()]


class CenterNetLite(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(*block(1, 24, 1), *block(24, 24, 2), *block(24, 24, 4), *block(24, 24, 1))
        self.hm = nn.Sequential(nn.Conv2d(24, 24, 3, padding=1), nn.ReLU(), nn.Conv2d(24, 1, 1))
        if FIX:
            self.hm[-1].bias.data.fill_(-2.19)

    def forward(self, x):
        return self.hm(self.backbone(x))


def focal_loss(logits, gt):
    pred = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = gt.eq(1).float()
    neg = 1 - pos
    pos_loss = (torch.log(pred) * (1 - pred) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - pred) * pred**2 * (1 - gt) ** 4 * neg).sum()
    num_pos = pos.sum().clamp(min=1)
    return -(pos_loss + neg_loss) / num_pos


def recall(logits, gt, counts):
    heat = torch.sigmoid(logits)
    keep = (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).float()
    heat = (heat * keep).flatten(1)
    hits = total = 0
    for h, g, k in zip(heat, gt, counts):
        k = int(k)
        peaks = h.topk(k).indices
        py, px = peaks // S, peaks % S
        cy, cx = torch.nonzero(g[0] == 1, as_tuple=True)
        d = (py[:, None] - cy[None]).abs().maximum((px[:, None] - cx[None]).abs())
        hits += int((d.min(0).values <= 2).sum())
        total += len(cy)
    return hits / total


model = CenterNetLite()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(train_x, train_hm), batch_size=32, shuffle=True, drop_last=True
)

with mlflow.start_run():
    mlflow.log_params({"lr": 0.01, "batch_size": 32, "hm_bias_init": -2.19 if FIX else "default"})
    step = 0
    for epoch in range(8):
        model.train()
        for x, hm in loader:
            optimizer.zero_grad()
            loss = focal_loss(model(x), hm)
            loss.backward()
            optimizer.step()
            if step % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            logits = model(val_x)
            val_loss = focal_loss(logits, val_hm).item()
            val_recall = recall(logits, val_hm, val_k)
        mlflow.log_metrics({"val_loss": val_loss, "val_recall": val_recall}, step=step)
        print(f"epoch {epoch} loss {loss.item():.3f} val_loss {val_loss:.3f} val_recall {val_recall:.3f}")
