"""Transfer learning in the style of the Udacity "Transfer Learning" notebook: a frozen convolutional feature extractor and a new classifier head (Linear-ReLU-Dropout-Linear-LogSoftmax, NLLLoss, Adam on the head only), evaluated on the test set every 5 steps, but the loop never calls `optimizer.zero_grad()`: each step's gradient is the sum of all gradients since the start, so the head keeps being pushed along stale directions and the loss swings, then the head settles at chance.

Report: udacity/deep-learning-v2-pytorch pull request #160 "Add zero_grad to Transfer Learning notebook" ("We
  are missing zero_grad in example, which can cause gradients to accumulate if not caught"; the fix adds
  `optimizer.zero_grad()` before the forward pass of the training loop)
  https://github.com/udacity/deep-learning-v2-pytorch/pull/160
Setup: 3x24x24 synthetic "cat vs dog" images (a textured blob on a noisy background: class 0 horizontal
stripes, class 1 diagonal stripes, random colours, position and size, Gaussian noise), normalised with the
ImageNet mean/std as the notebook's transforms do; a frozen feature extractor standing in for the pretrained
DenseNet (three Conv-BN-ReLU blocks with fixed weights, `requires_grad = False`, global average pooling to 256
features, eval mode, its BatchNorm statistics taken once from 512 training images); head `nn.Sequential(Linear(256, 128), ReLU, Dropout(0.2), Linear(128, 2), LogSoftmax)`,
NLLLoss, Adam(model.classifier.parameters(), lr=0.003), batch 64, 1,600 training / 400 test images, 3 epochs;
every 5 steps `train_loss` (running mean since the last print), `test_loss` and `test_accuracy`, as the
notebook prints them.
Expected first: gradients_not_zeroed
Acceptable in top 3: -
Symptom: oscillating_loss, plateau
Fixed (--fix, `optimizer.zero_grad()` at the top of the batch loop, as the pull request adds):
test_accuracy 0.49 -> 0.72 (step
30) -> 0.855 at step 75, test_loss 0.749 -> 0.485, train_loss 0.748 -> 0.547, still falling (buggy: train_loss
0.765 -> 1.11, 1.04, 1.23, 1.26 in swings over the first 40 steps, test_loss up to 1.547 at step 30, then both
stuck at 0.69-0.71 = ln 2 from step 45 to the end, test_accuracy 0.447-0.512 throughout: the head predicts one
class) (checked; 36 s / 39 s wall, ~28 s CPU each, on the 2-core machine shared by three helpers).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
torch.set_num_threads(1)
N_TRAIN, N_TEST, EPOCHS, BATCH, PRINT_EVERY = 1600, 400, 3, 64, 5


def make_images(n):
    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    labels = torch.randint(0, 2, (n,))
    cx, cy = (6 + 12 * torch.rand(2, n, 1, 1)).unbind(0)
    r = 4 + 4 * torch.rand(n, 1, 1)
    blob = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r**2).float()
    freq = 1.2 + 0.4 * torch.rand(n, 1, 1)
    stripes_h = torch.sin(freq * yy)
    stripes_d = torch.sin(freq * (xx + yy) / 1.41)
    texture = torch.where(labels.view(n, 1, 1) == 0, stripes_h, stripes_d) > 0
    colour = torch.rand(n, 3, 1, 1)
    background = 0.5 * torch.rand(n, 3, 1, 1)
    img = background + (blob * texture).unsqueeze(1) * (colour - background)
    img = (img + 0.15 * torch.randn(n, 3, 24, 24)).clamp(0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (img - mean) / std, labels


def block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(block(3, 64), block(64, 128), block(128, 256), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(
            nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 2), nn.LogSoftmax(dim=1)
        )

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


model = Net()
for param in model.features.parameters():  # "pretrained" backbone: frozen
    param.requires_grad = False
criterion = nn.NLLLoss()
optimizer = torch.optim.Adam(model.classifier.parameters(), lr=0.003)

x_train, y_train = make_images(N_TRAIN)
x_test, y_test = make_images(N_TEST)
# the frozen backbone's BatchNorm statistics, as a pretrained network would carry them
with torch.no_grad():
    model.train()
    for bn in model.features.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.momentum = None
    model.features(x_train[:512])

with mlflow.start_run():
    mlflow.log_params({"lr": 0.003, "batch_size": BATCH, "epochs": EPOCHS, "optimizer": "Adam"})
    steps, running_loss = 0, 0.0
    for epoch in range(EPOCHS):
        perm = torch.randperm(N_TRAIN)
        for i in range(0, N_TRAIN, BATCH):
            model.classifier.train()
            model.features.eval()
            idx = perm[i : i + BATCH]
            steps += 1
            if FIX:
                optimizer.zero_grad()
            logps = model(x_train[idx])
            loss = criterion(logps, y_train[idx])
            loss.backward()
            optimizer.step()
            running_loss += loss.item()

            if steps % PRINT_EVERY == 0:
                model.eval()
                with torch.no_grad():
                    logps = model(x_test)
                    test_loss = criterion(logps, y_test).item()
                    accuracy = (logps.argmax(1) == y_test).float().mean().item()
                mlflow.log_metrics(
                    {"train_loss": running_loss / PRINT_EVERY, "test_loss": test_loss, "test_accuracy": accuracy},
                    step=steps,
                )
                print(
                    f"Epoch {epoch + 1}/{EPOCHS}.. Train loss: {running_loss / PRINT_EVERY:.3f}.. "
                    f"Test loss: {test_loss:.3f}.. Test accuracy: {accuracy:.3f}"
                )
                running_loss = 0.0
