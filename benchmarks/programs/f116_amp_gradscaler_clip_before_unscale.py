"""The pytorch/examples MNIST network trained with autocast and a GradScaler, the gradient clipped with clip_grad_norm_ right after `scaler.scale(loss).backward()`: the clip measures the gradients while they are still multiplied by the loss scale (65536), cuts every step to 12 / 65536 of the intended norm, and the loss does not move.

Report: pytorch/pytorch issue #40907 "Gradient clipping with torch.cuda.amp" ("when I include the line
  `clip_grad_norm_(model.parameters(), 12)` the loss does not decrease anymore"; the example based on the
  pytorch mnist example; answer: call scaler.unscale_(optimizer) before clipping, as the AMP examples' "Working
  with Unscaled Gradients" section says) https://github.com/pytorch/pytorch/issues/40907
Setup: pytorch/examples mnist/main.py as the issue modified it: Net (Conv2d(1,32,3)-ReLU-Conv2d(32,64,3)-ReLU-
MaxPool2d(2)-Dropout(0.25)-Linear(9216,128)-ReLU-Dropout(0.5)-Linear(128,10)-log_softmax), F.nll_loss,
Adadelta(lr=1.0), StepLR(step_size=1, gamma=0.7), batch 64, the forward pass and loss under autocast, a
GradScaler (here on the CPU: torch.autocast("cpu", dtype=torch.bfloat16) and torch.amp.GradScaler("cpu"),
initial scale 65536), `scaler.scale(loss).backward()`, `clip_grad_norm_(model.parameters(), 12)`,
`scaler.step(optimizer)`, `scaler.update()`; synthetic 28x28 "digits" (10 stroke templates, shifted by up to 3
pixels, random stroke intensity, noise), normalised with (0.1307, 0.3081), 1,280 training / 320 test images,
2 epochs; `loss` every 2 batches (the script's log_interval is 10; the run is short), test_loss and test_accuracy per epoch.
Expected first: gradient_clipping_masks_lr
Acceptable in top 3: update_ratio_abnormal
Symptom: plateau
Fixed (--fix, scaler.unscale_(optimizer) before clip_grad_norm_, as the issue's answer and the AMP examples
say): `loss` 2.30 -> 1.65 (batch 8) -> 1.04 (batch 18) -> 0.37-0.44 at the end, test_accuracy 0.697 -> 0.956,
test_loss 0.890 -> 0.154 after 2 epochs (buggy: `loss` 2.29-2.32 at every logged batch, ln 10 = 2.303,
test_accuracy 0.116 at both epochs, test_loss 2.2995 -> 2.2987; with 1,920 images and 3 epochs, recorder on:
0.108 / 0.113 / 0.117 against the fix's 0.904 / 0.996 / 1.0) (checked; ~75 s CPU each, bfloat16 convolutions
being slow on this CPU, 164 s wall on a 2-core machine loaded by three helpers, OMP_NUM_THREADS=1, recorder off).
"""

import sys

import mlflow
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(1)
N_TRAIN, N_TEST, EPOCHS, LOG_INTERVAL = 1280, 320, 2, 2


def templates():
    """One template per digit: 3 random strokes (thick line segments) on a 28x28 canvas."""
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    out = torch.zeros(10, 28, 28)
    for d in range(10):
        for _ in range(3):
            (y0, x0), (y1, x1) = torch.randint(6, 22, (2, 2)).float()
            t = torch.linspace(0, 1, 40)
            for y, x in zip(y0 + (y1 - y0) * t, x0 + (x1 - x0) * t):
                out[d] = torch.maximum(out[d], torch.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 2.0))
    return out


TEMPLATES = templates()


def make(n):
    y = torch.randint(0, 10, (n,))
    x = TEMPLATES[y] * torch.empty(n, 1, 1).uniform_(0.6, 1.0)
    shifts = torch.randint(-3, 4, (n, 2))
    x = torch.stack([torch.roll(img, (int(a), int(b)), dims=(0, 1)) for img, (a, b) in zip(x, shifts)])
    x = (x + 0.15 * torch.randn_like(x)).clamp(0, 1)
    return ((x - 0.1307) / 0.3081).unsqueeze(1), y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


x_train, y_train = make(N_TRAIN)
x_test, y_test = make(N_TEST)
train_loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(x_train, y_train), batch_size=64, shuffle=True
)
test_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_test, y_test), batch_size=1000)
model = Net()
optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
scaler = torch.amp.GradScaler("cpu")


def train(epoch, step):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        optimizer.zero_grad()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            output = model(data)
            loss = F.nll_loss(output, target)
        scaler.scale(loss).backward()
        if FIX:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        if batch_idx % LOG_INTERVAL == 0:
            mlflow.log_metric("loss", loss.item(), step=step)
            print(
                f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)}]\tLoss: {loss.item():.6f}"
            )
    return step


def test(epoch, step):
    model.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        for data, target in test_loader:
            output = model(data)
            test_loss += F.nll_loss(output.float(), target, reduction="sum").item()
            correct += (output.argmax(dim=1) == target).sum().item()
    test_loss /= len(test_loader.dataset)
    accuracy = correct / len(test_loader.dataset)
    mlflow.log_metrics({"test_loss": test_loss, "test_accuracy": accuracy}, step=step)
    print(f"Test set: Average loss: {test_loss:.4f}, Accuracy: {correct}/{len(test_loader.dataset)}")


with mlflow.start_run():
    mlflow.log_params({"lr": 1.0, "gamma": 0.7, "batch_size": 64, "clip": 12, "amp": "bfloat16+GradScaler"})
    step = 0
    for epoch in range(1, EPOCHS + 1):
        step = train(epoch, step)
        test(epoch, step)
        scheduler.step()
