"""A GOTURN-style two-frame tracker (previous-frame crop and current-frame search region through a shared conv tower, fully connected layers regressing the box) whose hand-written step decay sits inside the loop over the current video's mini-batches: once the iteration count hits a decay step, the learning rate is multiplied by 0.1 for every mini-batch until that video is done.

Report: amoudgl/pygoturn issue #16 "an error about the use of exp_lr_scheduler" ("when itr > 0 and itr %
  args.lr_decay_step == 0, the lr should become 0.1*lr. However, the lr will continue decreasing until done==1.
  And the number of decreasing is related with batchsize ... So I set exp_lr_scheduler after 'if done:'";
  the maintainer: "Yes, you are correct") https://github.com/amoudgl/pygoturn/issues/16
Setup: as pygoturn's train.py: GoNet (the two crops through the same conv tower, features concatenated,
three fully connected layers with ReLU and dropout, 4 outputs: the box in the search region as x1, y1, x2,
y2 scaled to 0..10), L1Loss(reduction="sum") (pygoturn's `size_average=False`), SGD(momentum=0.9,
weight_decay=5e-4), `exp_lr_scheduler(optimizer, step, lr, gamma=0.1)` setting every group's lr to
lr * gamma; synthetic videos instead of ALOV / ImageNet: a textured rectangle drifting over a noisy
background, 32x32 single-channel crops, each iteration one video of 40 consecutive frame pairs in
mini-batches of 10 (`done` after its last), 240 iterations, decay step 100, lr 5e-4 (the conv tower is
trained here, there is no pretrained CaffeNet); per iteration `train_loss` (the video's mean summed L1 per
mini-batch) and `lr`, every 10 iterations `val_loss` (mean L1 per box on 200 held-out pairs) and
`val_iou`.
Expected first: lr_decay_too_fast
Acceptable in top 3: learning_rate_too_low
Symptom: plateau
Fixed (--fix, the decay moved after `if done:`, once per iteration as the issue does): lr 5e-4 -> 5e-5 at
iteration 100 -> 5e-6 at 200; val_loss 3.57 -> 2.1-3.1 (noisy at 5e-4) -> 2.51 at iteration 99 -> 1.51
(139) -> 1.28 at the end, val_iou 0.38 -> 0.48 -> 0.62 -> 0.656, train_loss 62.9 -> 16-26 -> 12-18 (buggy:
the same run up to iteration 99, then lr 5e-4 x 0.1^4 = 5e-8 within iteration 100 and 5e-12 from 200;
val_loss 2.41 -> 2.33 and val_iou 0.488 -> 0.498 over the last 140 iterations, train_loss wandering
between 15 and 37 with no trend) (checked; 92 s / 93 s wall on a 2-core machine loaded by three
helpers, ~33 s CPU each, OMP_NUM_THREADS=1).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
S = 32  # crop size
yy, xx = np.mgrid[0:S, 0:S]


def render(cx, cy, w, h, texture, bright, background):
    img = background + rng.normal(0, 0.25, (S, S))
    inside = (np.abs(xx - cx) <= w / 2) & (np.abs(yy - cy) <= h / 2)
    img[inside] += bright + texture[inside]
    return img


def video_pairs(n_pairs):
    """Consecutive frame pairs of one video: crops centred on the previous box, box of the current frame."""
    w, h = rng.uniform(6, 12), rng.uniform(6, 12)
    bright = rng.uniform(0.8, 1.6) * rng.choice([-1, 1])
    texture = rng.normal(0, 0.3, (S, S))
    background = 0.4 * np.sin(xx / rng.uniform(3, 8) + rng.uniform(0, 6)) * rng.uniform(0.3, 1)
    vx, vy = rng.normal(0, 2.0, 2)
    x1s, x2s, ys = [], [], []
    for _ in range(n_pairs):
        vx, vy = 0.7 * vx + rng.normal(0, 1.5), 0.7 * vy + rng.normal(0, 1.5)
        dx, dy = np.clip([vx, vy], -8, 8)
        ds = rng.uniform(0.9, 1.1)
        x1s.append(render(S / 2, S / 2, w, h, texture, bright, background))
        cx, cy, cw, ch = S / 2 + dx, S / 2 + dy, w * ds, h * ds
        x2s.append(render(cx, cy, cw, ch, texture, bright, background))
        ys.append(np.array([cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2]) / S * 10)
    t = lambda a: torch.tensor(np.stack(a), dtype=torch.float32)  # noqa: E731
    return t(x1s)[:, None], t(x2s)[:, None], t(ys)


class GoNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(2 * 32 * 8 * 8, 256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, 4),
        )

    def forward(self, x1, x2):
        return self.classifier(torch.cat([self.features(x1), self.features(x2)], 1))


def exp_lr_scheduler(optimizer, step, init_lr, gamma):
    """Decay learning rate by a factor of gamma (pygoturn's helper)."""
    lr = init_lr * gamma
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr
    return optimizer, lr


def iou(a, b):
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = lambda r: (r[:, 2:] - r[:, :2]).clamp(min=0).prod(1)  # noqa: E731
    return inter / (area(a) + area(b) - inter + 1e-9)


val = [video_pairs(10) for _ in range(20)]
val_x1, val_x2, val_y = (torch.cat(v) for v in zip(*val))

LR, GAMMA, DECAY_STEP, ITERS, PAIRS, BATCH = 5e-4, 0.1, 100, 240, 40, 10
net = GoNet()
criterion = nn.L1Loss(reduction="sum")
optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9, weight_decay=0.0005)

with mlflow.start_run():
    mlflow.log_params({"lr": LR, "gamma": GAMMA, "lr_decay_step": DECAY_STEP, "batch_size": BATCH})
    lr = LR
    for itr in range(ITERS):
        net.train()
        x1, x2, y = video_pairs(PAIRS)
        losses, start, done = [], 0, False
        while not done:
            if not FIX and itr > 0 and itr % DECAY_STEP == 0:
                optimizer, lr = exp_lr_scheduler(optimizer, itr, lr, GAMMA)
            sl = slice(start, start + BATCH)
            optimizer.zero_grad()
            loss = criterion(net(x1[sl], x2[sl]), y[sl])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            start += BATCH
            done = start >= PAIRS
        if done and FIX and itr > 0 and itr % DECAY_STEP == 0:
            optimizer, lr = exp_lr_scheduler(optimizer, itr, lr, GAMMA)
        mlflow.log_metrics({"train_loss": float(np.mean(losses)), "lr": lr}, step=itr)
        if itr % 10 == 9:
            net.eval()
            with torch.no_grad():
                out = net(val_x1, val_x2)
                val_loss = criterion(out, val_y).item() / len(val_y)
                val_iou = iou(out, val_y).mean().item()
            mlflow.log_metrics({"val_loss": val_loss, "val_iou": val_iou}, step=itr)
            print(itr, f"train_loss {np.mean(losses):.3f} val_loss {val_loss:.3f} val_iou {val_iou:.3f} lr {lr:.2e}")
