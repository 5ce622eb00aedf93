"""An SSD-style single-shot detector (VGG-like base with an L2Norm(scale 20) on the first source, extra layers, 3x3 loc/conf heads on three feature maps, MultiBoxLoss with hard negative mining) trained with the repository's default SGD learning rate 1e-3 but batch_size 1: the single-image steps are too large and the loss jumps about (up to 80 in the first 100 iterations, medians of 17-22 for the first 600) and ends two to three times higher than with a tenth of the rate; the reporter's run went on to 3e10 and NaN, this smaller one stays finite.

Report: amdegroot/ssd.pytorch issue #275 "Loss is nan when using default configs" ("iter 40 || Loss: 20.0848 ||
  iter 50 || Loss: 29821698048.0000 || iter 60 || Loss: nan"; the configs changed: "batch_size = 1"; the
  reporter: "Solved this problem by using a small learning rate"; another user on the same problem in #300: "lower
  batch-size needs a lower learning rate") https://github.com/amdegroot/ssd.pytorch/issues/275
Setup: as ssd.pytorch's train.py scaled down for a CPU: inputs as its BaseTransform makes them (BGR pixels 0-255
minus the means 104, 117, 123, not scaled), a VGG-like base trained from scratch (conv 16-16, pool, 32-32, pool,
64-64 = the conv4_3 source with L2Norm(64, 20), pool, 128 = the fc7 source) plus extras (1x1 64, 3x3/2 128), four
default boxes per cell (aspect ratios 1, 1', 2, 1/2; scales 0.2, 0.45, 0.7) on the 16x16, 8x8 and 4x4 maps,
xavier init as its weights_init; MultiBoxLoss (matching at IoU 0.5, box encoding with variances 0.1/0.2, smooth L1
on positives, cross-entropy with 3:1 hard negative mining, both divided by the number of positives); SGD(lr 1e-3,
momentum 0.9, weight_decay 5e-4) as the defaults, batch_size 1 as the reporter; synthetic 64x64 scenes with 1-3
objects of 2 classes (filled squares and discs of random colour and size on a noisy background), 1,200
iterations; every 10 iterations `loss`, `loss_l` and `loss_c` (the repository prints "iter N || Loss:" every 10),
no validation as in its train.py.
Expected first: learning_rate_too_high
Acceptable in top 3: inputs_not_normalized
Symptom: oscillating_loss, not_converged
Fixed (--fix, a smaller learning rate, 1e-4, as the reporter did): loss 42.3 at iteration 0, 18.3, 13.7, 10.4,
6.6 by iteration 40; median of the logged losses 6.1 (iterations 0-190) -> 4.9 -> 4.2 -> 3.9 -> 4.0 -> 3.0
(1000-1190), highest after iteration 200 7.3; means over 300 iterations loss_l 2.16 -> 1.31 -> 1.04 -> 1.00, loss_c
4.59 -> 3.20 -> 2.84 -> 2.64 (buggy, lr 1e-3: 42.3, 50.2, 33.8, 12.5, ... 80.2 at iteration 70; medians 17.4 ->
21.8 (200-390) -> 18.1 -> 13.2 -> 12.2 -> 7.1, spikes to 73.9, 50.9, 29.4, 20.7 in the later windows; means loss_l
6.47 -> 3.95 -> 3.47 -> 2.81, loss_c 21.8 -> 17.8 -> 11.2 -> 7.2: no NaN in these 1,200 iterations (the report's
went NaN by iteration 60), but the median of every window 2.4 to 4.5 times the fixed run's) (checked; 85 s / 51 s wall,
45 s / 40 s CPU, on the 2-core machine shared by three helpers, OMP_NUM_THREADS=1).
"""

import itertools
import math
import sys

import mlflow
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
torch.set_num_threads(1)
SIZE, NUM_CLASSES, BATCH, MAX_ITER = 64, 3, 1, 1200
LR = 1e-4 if FIX else 1e-3
FEATURE_MAPS, SCALES = [16, 8, 4], [0.2, 0.45, 0.7, 0.95]
MEANS = torch.tensor([104.0, 117.0, 123.0]).view(3, 1, 1)


def priors():  # ssd.pytorch PriorBox: (cx, cy, w, h) in [0, 1]
    boxes = []
    for k, f in enumerate(FEATURE_MAPS):
        for i, j in itertools.product(range(f), repeat=2):
            cx, cy, s, s_next = (j + 0.5) / f, (i + 0.5) / f, SCALES[k], math.sqrt(SCALES[k] * SCALES[k + 1])
            boxes += [[cx, cy, s, s], [cx, cy, s_next, s_next]]
            boxes += [[cx, cy, s * math.sqrt(2), s / math.sqrt(2)], [cx, cy, s / math.sqrt(2), s * math.sqrt(2)]]
    return torch.tensor(boxes).clamp(0, 1)


PRIORS = priors()


def make_scene():
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    img = 255 * (0.2 + 0.6 * torch.rand(3, 1, 1)) + 20 * torch.randn(3, SIZE, SIZE)
    boxes, labels = [], []
    for _ in range(int(torch.randint(1, 4, (1,)))):
        cls = int(torch.randint(0, 2, (1,)))
        size = 12 + 20 * torch.rand(1).item()
        x0, y0 = (SIZE - size) * torch.rand(2)
        x0, y0 = x0.item(), y0.item()
        if cls == 0:
            region = (xx >= x0) & (xx < x0 + size) & (yy >= y0) & (yy < y0 + size)
        else:
            region = (xx - x0 - size / 2) ** 2 + (yy - y0 - size / 2) ** 2 <= (size / 2) ** 2
        img[:, region] = (255 * torch.rand(3, 1)).expand(3, int(region.sum()))
        boxes.append([x0 / SIZE, y0 / SIZE, (x0 + size) / SIZE, (y0 + size) / SIZE])
        labels.append(cls)
    return img.clamp(0, 255) - MEANS, torch.tensor(boxes), torch.tensor(labels)  # BaseTransform: subtract means


class L2Norm(nn.Module):
    def __init__(self, channels, scale):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x):
        return self.weight.view(1, -1, 1, 1) * x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)


class SSD(nn.Module):
    def __init__(self):
        super().__init__()

        def conv(c_in, c_out, k=3, s=1):
            return [nn.Conv2d(c_in, c_out, k, s, k // 2), nn.ReLU(inplace=True)]

        self.conv4_3 = nn.Sequential(
            *conv(3, 16), *conv(16, 16), nn.MaxPool2d(2), *conv(16, 32), *conv(32, 32), nn.MaxPool2d(2),
            *conv(32, 64), *conv(64, 64),
        )  # fmt: skip
        self.l2norm = L2Norm(64, 20)
        self.fc7 = nn.Sequential(nn.MaxPool2d(2), *conv(64, 128), *conv(128, 128, k=1))
        self.extras = nn.Sequential(*conv(128, 64, k=1), *conv(64, 128, s=2))
        channels = [64, 128, 128]
        self.loc = nn.ModuleList(nn.Conv2d(c, 4 * 4, 3, padding=1) for c in channels)
        self.conf = nn.ModuleList(nn.Conv2d(c, 4 * NUM_CLASSES, 3, padding=1) for c in channels)

    def forward(self, x):
        s1 = self.conv4_3(x)
        s2 = self.fc7(s1)
        s3 = self.extras(s2)
        sources = [self.l2norm(s1), s2, s3]
        loc = torch.cat([h(s).permute(0, 2, 3, 1).flatten(1) for h, s in zip(self.loc, sources)], 1)
        conf = torch.cat([h(s).permute(0, 2, 3, 1).flatten(1) for h, s in zip(self.conf, sources)], 1)
        return loc.view(x.shape[0], -1, 4), conf.view(x.shape[0], -1, NUM_CLASSES)


def point_form(p):
    return torch.cat([p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2], 1)


def jaccard(a, b):
    lt, rb = torch.max(a[:, None, :2], b[None, :, :2]), torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(1), (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def match(truths, labels, threshold=0.5, variances=(0.1, 0.2)):
    overlaps = jaccard(truths, point_form(PRIORS))
    best_prior = overlaps.argmax(1)
    best_truth_overlap, best_truth = overlaps.max(0)
    best_truth_overlap[best_prior] = 2.0
    for j in range(best_prior.shape[0]):
        best_truth[best_prior[j]] = j
    matches = truths[best_truth]
    conf = labels[best_truth] + 1
    conf[best_truth_overlap < threshold] = 0
    centre = ((matches[:, :2] + matches[:, 2:]) / 2 - PRIORS[:, :2]) / (variances[0] * PRIORS[:, 2:])
    wh = torch.log((matches[:, 2:] - matches[:, :2]) / PRIORS[:, 2:]) / variances[1]
    return torch.cat([centre, wh], 1), conf


def multibox_loss(loc_data, conf_data, targets, negpos_ratio=3):
    matched = [match(b, lab) for b, lab in targets]
    loc_t, conf_t = torch.stack([m[0] for m in matched]), torch.stack([m[1] for m in matched])
    pos = conf_t > 0
    loss_l = F.smooth_l1_loss(loc_data[pos], loc_t[pos], reduction="sum")
    loss_c_all = F.cross_entropy(conf_data.reshape(-1, NUM_CLASSES), conf_t.flatten(), reduction="none")
    loss_c_all = loss_c_all.view(conf_t.shape).detach().clone()
    loss_c_all[pos] = 0  # hard negative mining
    _, idx = loss_c_all.sort(1, descending=True)
    _, rank = idx.sort(1)
    num_neg = (negpos_ratio * pos.sum(1, keepdim=True)).clamp(max=pos.shape[1] - 1)
    neg = rank < num_neg
    keep = pos | neg
    loss_c = F.cross_entropy(conf_data[keep], conf_t[keep], reduction="sum")
    n = pos.sum().float()
    return loss_l / n, loss_c / n


def weights_init(m):
    if isinstance(m, nn.Conv2d):
        nn.init.xavier_uniform_(m.weight)
        m.bias.data.zero_()


net = SSD()
net.apply(weights_init)
optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)

with mlflow.start_run():
    mlflow.log_params({"lr": LR, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": BATCH, "max_iter": MAX_ITER})
    net.train()
    loc_sum, conf_sum = 0.0, 0.0
    for iteration in range(MAX_ITER):
        scenes = [make_scene() for _ in range(BATCH)]
        images = torch.stack([s[0] for s in scenes])
        targets = [(s[1], s[2]) for s in scenes]
        out = net(images)
        optimizer.zero_grad()
        loss_l, loss_c = multibox_loss(*out, targets)
        loss = loss_l + loss_c
        loss.backward()
        optimizer.step()
        loc_sum += loss_l.item()
        conf_sum += loss_c.item()
        if iteration % 10 == 0:
            mlflow.log_metrics({"loss": loss.item(), "loss_l": loss_l.item(), "loss_c": loss_c.item()}, step=iteration)
            print(f"iter {iteration} || Loss: {loss.item():.4f} ||")
        if (iteration + 1) % 300 == 0:
            print(
                f"iterations {iteration - 298}-{iteration + 1}: mean loss_l {loc_sum / 300:.4f}, loss_c {conf_sum / 300:.4f}"
            )
            loc_sum, conf_sum = 0.0, 0.0
