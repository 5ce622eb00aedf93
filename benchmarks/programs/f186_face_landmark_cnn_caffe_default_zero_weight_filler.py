"""A VGG-style face-landmark regressor (conv stack, two fc-4096-style layers with dropout, Euclidean loss, SGD with Nesterov momentum) whose layers carry no weight filler, so every weight and bias starts at the Caffe default constant 0: no gradient reaches any layer but the output bias, which learns the mean shape, and every face is given the same landmarks.

Report: qiexing/face-landmark-localization issue #24 "训练loss停止下降问题" (training loss stops decreasing: "the loss
  falls to about 0.7 and will not go lower; whatever the pose, the 68 points predicted for every face sit as an
  upright frontal face"; the author: "if you did not use an ImageNet pre-trained model it is probably the
  network's weight initialisation; use xavier", weight_filler { type: "xavier" variance_norm: AVERAGE }; the user:
  "thank you very much, after the change it is a big improvement")
  https://github.com/qiexing/face-landmark-localization/issues/24
Setup: as the repository's train/train_val.prototxt ("sub2_vgg", whose Convolution and InnerProduct layers give no
weight_filler, so Caffe fills weights and biases with its default constant 0) and solver.prototxt (momentum 0.9,
NESTEROV, weight_decay 5e-4, lr_policy fixed, batch 70, test batch 20; base_lr 1e-4 there over 1.7M iterations,
3e-3 here for a 500-iteration run), scaled down for a CPU: conv1 7x7/2 (16) - ReLU - LRN - maxpool 3/3,
conv2 5x5 (32) - ReLU, conv3/4/5 3x3 (32) - ReLU, maxpool 3/3, fc6 (256) - ReLU - Dropout(0.5), fc7 (256) - ReLU -
Dropout(0.5), output Linear to 2 x 21 landmark coordinates (the repository's 68; its pose branch left out);
Caffe's EuclideanLoss (sum of squared errors over the coordinates / (2 x batch)); synthetic 3x48x48 BGR face crops
(a skin-coloured ellipse with dark brows, eyes, nose and mouth, random scale, tilt up to 25 degrees, shift and
background) with 21 landmarks as fractions of the crop; 2,100 training / 400 test faces, 500 iterations; `loss`
every 10 iterations (Caffe's display, here the mean of those 10), `test_loss` and `test_error_px` (mean
point-to-point error in pixels) every 50 (Caffe's test_interval).
Expected first: bad_weight_init
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, weight_filler xavier with variance_norm AVERAGE on every layer, as the author advises; biases 0):
test_loss 0.323 (iteration 50) -> 0.252 (200) -> 0.148 (400) -> 0.118 at iteration 500, test_error_px 7.80 -> 4.49,
below the 7.56 px of always answering the training set's mean shape, loss 0.41 -> 0.12, still falling (buggy:
only the output bias can learn; test_loss 0.562 at iteration 50, then 0.302 from iteration 150 to the end
(0.3015-0.3020), test_error_px stuck at 7.56-7.57 px = the mean shape's error, loss swinging 0.28-0.32 around
it) (checked; 2.0 / 1.8 min wall, 57 s / 51 s CPU, on the 2-core machine shared by three helpers,
OMP_NUM_THREADS=1).
"""

import math
import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
torch.set_num_threads(1)
SIZE, N_TRAIN, N_TEST, BATCH, TEST_BATCH, MAX_ITER, DISPLAY, TEST_INTERVAL = 48, 2100, 400, 70, 20, 500, 10, 50

# 21 landmarks of a frontal face in a unit frame: brows (2 x 3), eyes (2 x 3), nose (3), mouth (4), chin (2)
brows = [(-0.55, -0.42), (-0.38, -0.48), (-0.2, -0.44), (0.2, -0.44), (0.38, -0.48), (0.55, -0.42)]
eyes = [(-0.5, -0.25), (-0.36, -0.25), (-0.22, -0.25), (0.22, -0.25), (0.36, -0.25), (0.5, -0.25)]
nose = [(0.0, -0.1), (-0.12, 0.12), (0.12, 0.12)]
mouth = [(-0.3, 0.42), (0.0, 0.36), (0.3, 0.42), (0.0, 0.5)]
chin = [(-0.25, 0.82), (0.25, 0.82)]
TEMPLATE = torch.tensor(brows + eyes + nose + mouth + chin)
DARK = torch.tensor([0.5] * 6 + [0.7] * 6 + [0.35] * 3 + [0.6] * 4 + [0.0] * 2)


def make_faces(n):
    yy, xx = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    images, landmarks = torch.zeros(n, 3, SIZE, SIZE), torch.zeros(n, 21, 2)
    for k in range(n):
        scale = SIZE * (0.22 + 0.16 * torch.rand(1))
        theta = math.radians(25) * (2 * torch.rand(1).item() - 1)
        rot = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        centre = SIZE / 2 + SIZE * 0.2 * (2 * torch.rand(2) - 1)
        pts = (TEMPLATE @ rot.T) * scale + centre
        u = (xx - centre[0]) * math.cos(theta) + (yy - centre[1]) * math.sin(theta)
        v = -(xx - centre[0]) * math.sin(theta) + (yy - centre[1]) * math.cos(theta)
        face = ((u / (0.75 * scale)) ** 2 + ((v - 0.15 * scale) / scale) ** 2 < 1).float()
        skin = torch.tensor([0.45, 0.55, 0.75]) + 0.1 * torch.randn(3)  # BGR
        background = 0.6 * torch.rand(3, 1, 1)
        img = background + face * (skin.view(3, 1, 1) - background)
        spots = torch.exp(-((xx - pts[:, 0, None, None]) ** 2 + (yy - pts[:, 1, None, None]) ** 2) / (0.004 * scale**2))
        img = img * (1 - (DARK[:, None, None] * spots).sum(0).clamp(max=0.8))
        images[k] = (img + 0.04 * torch.randn_like(img)).clamp(0, 1)
        landmarks[k] = pts / SIZE
    return images, landmarks.reshape(n, 42)


class SubVGG(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 7, stride=2),
            nn.ReLU(),
            nn.LocalResponseNorm(5, alpha=0.0005, beta=0.75, k=2),
            nn.MaxPool2d(3, 3),
            nn.Conv2d(16, 32, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(3, 3, ceil_mode=True),
        )
        self.fc6 = nn.Sequential(nn.Linear(32 * 3 * 3, 256), nn.ReLU(), nn.Dropout(0.5))
        self.fc7 = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.5))
        self.points = nn.Linear(256, 42)

    def forward(self, x):
        return self.points(self.fc7(self.fc6(self.features(x).flatten(1))))


def fill(module):
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        if FIX:  # weight_filler { type: "xavier" variance_norm: AVERAGE }
            nn.init.xavier_uniform_(module.weight)
        else:  # no weight_filler in the prototxt: Caffe's default ConstantFiller, value 0
            nn.init.constant_(module.weight, 0.0)
        nn.init.constant_(module.bias, 0.0)  # no bias_filler: constant 0 as well


def euclidean_loss(pred, label):  # Caffe EuclideanLoss: 1/(2N) * sum ||pred - label||^2
    return ((pred - label) ** 2).sum() / (2 * pred.shape[0])


x_train, y_train = make_faces(N_TRAIN)
x_test, y_test = make_faces(N_TEST)
net = SubVGG()
net.apply(fill)
optimizer = torch.optim.SGD(net.parameters(), lr=3e-3, momentum=0.9, nesterov=True, weight_decay=5e-4)

with mlflow.start_run():
    mlflow.log_params(
        {"base_lr": 3e-3, "momentum": 0.9, "solver_type": "NESTEROV", "weight_decay": 5e-4, "batch_size": BATCH}
    )
    mlflow.log_param("weight_filler", "xavier" if FIX else "constant (default)")
    perm, cursor, running = torch.randperm(N_TRAIN), 0, 0.0
    for it in range(1, MAX_ITER + 1):
        if cursor + BATCH > N_TRAIN:
            perm, cursor = torch.randperm(N_TRAIN), 0
        idx = perm[cursor : cursor + BATCH]
        cursor += BATCH
        net.train()
        loss = euclidean_loss(net(x_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += loss.item()
        if it % DISPLAY == 0:
            mlflow.log_metric("loss", running / DISPLAY, step=it)
            running = 0.0
        if it % TEST_INTERVAL == 0:
            net.eval()
            with torch.no_grad():
                losses, errors = [], []
                for i in range(0, N_TEST, TEST_BATCH):
                    pred = net(x_test[i : i + TEST_BATCH])
                    label = y_test[i : i + TEST_BATCH]
                    losses.append(euclidean_loss(pred, label).item())
                    errors.append(((pred - label).view(-1, 21, 2) * SIZE).norm(dim=2).mean().item())
            test_loss, test_error = sum(losses) / len(losses), sum(errors) / len(errors)
            mlflow.log_metrics({"test_loss": test_loss, "test_error_px": test_error}, step=it)
            print(f"Iteration {it}, loss = {loss.item():.4f}, test_loss = {test_loss:.4f}, error {test_error:.2f} px")
    mean_shape = y_train.mean(0)
    print("error of the mean shape (px):", ((mean_shape - y_test).view(-1, 21, 2) * SIZE).norm(dim=2).mean().item())
