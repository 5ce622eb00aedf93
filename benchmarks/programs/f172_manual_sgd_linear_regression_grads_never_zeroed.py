"""A linear regression trained by a hand-written update step (w.data.sub_(lr * w.grad), no optimizer), as in a PyTorch course's first lesson, with the two `grad.zero_()` calls left out: every backward() adds into the gradients of all the steps before, so each update is the sum of every gradient so far and the loss swings between 0.5 and 11 for ever instead of settling.

Report: greebear/pytorch-learning issue #1 "this linear_regression demo cannot work well in pytorch 1.0.1" ("The
  loss is not always decreasing, even lr is very small 1e-6. because the code should manually add a line:
  `w.grad.data._zero()` `b.grad.data._zero()` to zero the grad."; the owner: "thanks for your mention, it is
  already fixed") https://github.com/greebear/pytorch-learning/issues/1
Setup: as the course's lr_regression.py homework ("adjust the stopping condition and the slope of y = 2*x + (5 +
torch.randn(20, 1))"): x = torch.rand(20, 1) * 10, y = 2x + 5 + N(0, 1), w = torch.randn(1, requires_grad=True),
b = torch.zeros(1, requires_grad=True), y_pred = w*x + b, loss = (0.5 * (y - y_pred) ** 2).mean(), loss.backward(),
then b.data.sub_(lr * b.grad) and w.data.sub_(lr * w.grad) with lr = 0.05, up to 1000 iterations, stopping when the
loss (checked every 20 iterations, where the lesson draws its plot) is under 0.5; `loss` logged every 5
iterations, and w and b every 20.
Expected first: gradients_not_zeroed
Acceptable in top 3: -
Symptom: oscillating_loss
Fixed (--fix, `w.grad.zero_()` and `b.grad.zero_()` after the update, as the course's fixed script (its
"20191015" comments) and the issue have it): loss 7.2 -> 0.88 by iteration 100, under 0.5 at iteration 320
(0.498, stop), w 2.20 and b 4.03 against the true 2 and 5 (buggy: no stop in 1000 iterations; the loss swings
between 0.47 and 11.2, a fast swing every ~17 iterations on top of a slow one of ~260, 10.65 at the last log,
w 2.17 and b 5.96 at iteration 980 after passing 0.74..3.4 and 0.2..9.1) (checked; 62 s / 55 s wall on the 2-core
machine shared by three helpers, most of it start-up).
"""

import sys

import mlflow
import torch

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(10)

lr = 0.05
x = torch.rand(20, 1) * 10  # x data (tensor), shape=(20, 1)
y = 2 * x + (5 + torch.randn(20, 1))  # y data (tensor), shape=(20, 1)

w = torch.randn((1), requires_grad=True)
b = torch.zeros((1), requires_grad=True)

with mlflow.start_run():
    mlflow.log_params({"lr": lr, "n_samples": 20, "max_iterations": 1000})
    for iteration in range(1000):
        # forward
        wx = torch.mul(w, x)
        y_pred = torch.add(wx, b)
        # MSE loss
        loss = (0.5 * (y - y_pred) ** 2).mean()
        # backward
        loss.backward()
        # update the parameters
        b.data.sub_(lr * b.grad)
        w.data.sub_(lr * w.grad)
        if FIX:
            w.grad.zero_()
            b.grad.zero_()
        if iteration % 5 == 0:
            mlflow.log_metric("loss", loss.item(), step=iteration)
        if iteration % 20 == 0:
            mlflow.log_metrics({"w": w.item(), "b": b.item()}, step=iteration)
            print(f"Iteration: {iteration} loss={loss.item():.4f} w={w.item():.3f} b={b.item():.3f}")
            if loss.data.numpy() < 0.5:
                break
