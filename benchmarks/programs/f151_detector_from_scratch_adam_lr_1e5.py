"""A small single-object detector (a conv backbone with a classification head and a box-regression head) trained from scratch at keras-retinanet's hard-coded Adam learning rate of 1e-5, a rate meant for fine-tuning pretrained weights.

Report: fizyr/keras-retinanet pull request #843 "Allow to specify the learning rate" ("The learning rate 1e-5
  is too small and is good only for model fine-tuning, while there are many cases when it would be better to
  train the network from scratch.") https://github.com/fizyr/keras-retinanet/pull/843
Setup: as keras-retinanet's train.py compiles its model (`adam(lr=1e-5)`, the `classification` and `regression`
losses summed, `loss`, `classification_loss` and `regression_loss` reported), with the backbone built from
scratch (`--no-weights`); here one object per image: synthetic 3x32x32 images of one of 4 shapes (square,
disc, cross, ring) in a random colour, size and place over a noisy background; backbone Conv(3,32,3)-ReLU-
MaxPool-Conv(32,64,3)-ReLU-MaxPool-Conv(64,64,3)-ReLU-MaxPool, Flatten, Linear(1024,128)-ReLU, a class head
Linear(128,4) with CrossEntropyLoss and a box head Linear(128,4) (x1, y1, x2, y2 in 0..1) with SmoothL1
(beta 1/9, as RetinaNet's sigma 3); Adam, batch 32, 1600 training / 400 validation images, 8 epochs; per epoch
loss, classification_loss, regression_loss, val_loss, val_accuracy and val_iou (mean box IoU). The repo's
`clipnorm=0.001` is left out: Adam's per-parameter normalisation undoes a global rescaling of the gradient.
Expected first: learning_rate_too_low
Acceptable in top 3: -
Symptom: not_converged
Fixed (--fix, the rate given on the command line as the pull request allows, lr 1e-3, Adam's default): loss
1.45 -> 0.13, classification_loss 1.37 -> 0.10, val_loss 1.35 -> 0.11, val_accuracy 0.41 -> 0.98 (epoch 6),
val_iou 0.47 -> 0.56 after 8 epochs (buggy: loss 1.79 -> 1.46 almost in a straight line, the classification_loss
flat at 1.38-1.39 = ln 4 all run long, only the regression_loss falling (0.40 -> 0.074); val_loss 1.75 -> 1.45,
val_accuracy 0.245-0.30 (chance 0.25) at every epoch, val_iou 0.00 -> 0.39, still rising) (checked; ~3.8 min CPU
each, 16 min wall on a 2-core machine loaded about 10 deep by three helpers).
"""

import sys

import mlflow
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
LR = 1e-3 if FIX else 1e-5
torch.manual_seed(0)
SIZE, N_CLASSES = 32, 4
yy, xx = torch.meshgrid(torch.arange(float(SIZE)), torch.arange(float(SIZE)), indexing="ij")


def make(n):
    x = 0.3 * torch.randn(n, 3, SIZE, SIZE)
    labels = torch.randint(0, N_CLASSES, (n,))
    boxes = torch.zeros(n, 4)
    for i in range(n):
        s = int(torch.randint(8, 17, ()).item())
        x0, y0 = torch.randint(0, SIZE - s + 1, (2,)).tolist()
        cx, cy, r = x0 + (s - 1) / 2, y0 + (s - 1) / 2, s / 2
        inside = (xx >= x0) & (xx < x0 + s) & (yy >= y0) & (yy < y0 + s)
        d = ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()
        c = labels[i].item()
        if c == 0:
            mask = inside
        elif c == 1:
            mask = d <= r
        elif c == 2:
            mask = inside & (((xx - cx).abs() < s / 6) | ((yy - cy).abs() < s / 6))
        else:
            mask = (d <= r) & (d >= r * 0.55)
        colour = torch.rand(3, 1) + 0.5
        x[i][:, mask] += colour
        boxes[i] = torch.tensor([x0, y0, x0 + s, y0 + s]) / SIZE
    return x, labels, boxes


x_train, c_train, b_train = make(1600)
x_val, c_val, b_val = make(400)


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 128),
            nn.ReLU(),
        )
        self.classification = nn.Linear(128, N_CLASSES)
        self.regression = nn.Linear(128, 4)

    def forward(self, x):
        h = self.backbone(x)
        return self.classification(h), self.regression(h)


def box_iou(a, b):
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = lambda z: (z[:, 2:] - z[:, :2]).clamp(min=0).prod(1)  # noqa: E731
    return inter / (area(a) + area(b) - inter + 1e-9)


model = Detector()
optimizer = torch.optim.Adam(model.parameters(), lr=LR)
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(x_train, c_train, b_train), batch_size=32, shuffle=True
)

with mlflow.start_run():
    mlflow.log_params({"lr": LR, "batch_size": 32, "weights": "none (from scratch)"})
    for epoch in range(8):
        model.train()
        sums = {"loss": 0.0, "classification_loss": 0.0, "regression_loss": 0.0}
        for xb, cb, bb in loader:
            logits, box = model(xb)
            cls_loss = F.cross_entropy(logits, cb)
            reg_loss = F.smooth_l1_loss(box, bb, beta=1 / 9)
            loss = cls_loss + reg_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for k, v in (("loss", loss), ("classification_loss", cls_loss), ("regression_loss", reg_loss)):
                sums[k] += v.item() * len(xb)
        model.eval()
        with torch.no_grad():
            logits, box = model(x_val)
            val_loss = (F.cross_entropy(logits, c_val) + F.smooth_l1_loss(box, b_val, beta=1 / 9)).item()
            metrics = {k: v / len(x_train) for k, v in sums.items()}
            metrics.update(
                val_loss=val_loss,
                val_accuracy=(logits.argmax(1) == c_val).float().mean().item(),
                val_iou=box_iou(box, b_val).mean().item(),
            )
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
