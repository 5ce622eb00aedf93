"""Healthy: knowledge distillation of a small CNN student from a wider CNN teacher trained first in the same script (Hinton's soft targets at temperature 4, the T^2 factor, plus the hard-label loss).

Report: healthy, in the style of the PyTorch tutorial "Knowledge Distillation Tutorial" (teacher trained
  first, then frozen in eval mode under torch.no_grad(); student loss = soft_target_loss_weight * T^2 *
  KL(softmax(teacher / T) || log_softmax(student / T)) + ce_loss_weight * CrossEntropy, Adam)
  https://pytorch.org/tutorials/beginner/knowledge_distillation_tutorial.html
Setup: 1x16x16 grey images of 6 classes (a bar, a cross, a ring, a square outline, a diagonal, a dot grid at
a random position and contrast, with pixel noise and 10% of the training labels flipped), 1,500 training /
500 validation images; teacher Conv(1,32)-Conv(32,64)-Linear(1024,128)-Linear(128,6) trained 4 epochs
first in the same run (teacher_train_loss logged, its validation accuracy a param), student Conv(1,8)-Conv(8,16)-Linear(256,6) trained 10
epochs with T=4, soft weight 0.75, CE weight 0.25, Adam(lr=1e-3), batch 64; per-epoch train_loss (the
distillation loss), val_loss (the student's cross-entropy on the validation labels) and val_acc.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (no fix, a healthy run): teacher val_acc 0.80 after 4 epochs (teacher_train_loss logged first);
student val_acc 0.20 -> 0.36 -> 0.57 -> 0.62 -> 0.68 and val_loss 1.87 -> 1.42 -> 1.09 -> 0.93 after 10
epochs, still improving (short, as such runs are), train_loss 1.97 -> 0.44 (checked; 111 s wall, 62 s CPU
on the loaded 2-core machine).
"""

import mlflow
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)


def shape(kind, r, c):
    img = torch.zeros(16, 16)
    if kind == 0:
        img[r : r + 2, c : c + 8] = 1
    elif kind == 1:
        img[r + 3, c : c + 8] = 1
        img[r : r + 8, c + 3] = 1
    elif kind == 2:
        yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
        d = ((yy - r - 3.5) ** 2 + (xx - c - 3.5) ** 2).sqrt()
        img[(d > 2.2) & (d < 3.8)] = 1
    elif kind == 3:
        img[r : r + 8, c : c + 8] = 1
        img[r + 2 : r + 6, c + 2 : c + 6] = 0
    elif kind == 4:
        for k in range(8):
            img[r + k, c + k] = 1
    else:
        img[r : r + 8 : 2, c : c + 8 : 2] = 1
    return img


def make(n, flip=0.0):
    y = torch.randint(0, 6, (n,))
    x = torch.stack([shape(int(k), *torch.randint(0, 8, (2,)).tolist()) for k in y])
    x = x * torch.empty(n, 1, 1).uniform_(0.6, 1.4) + 0.35 * torch.randn(n, 16, 16)
    noisy = torch.rand(n) < flip
    y = torch.where(noisy, torch.randint(0, 6, (n,)), y)
    return x.unsqueeze(1), y


train_set = TensorDataset(*make(1500, flip=0.1))
val_x, val_y = make(500)
train_loader = DataLoader(train_set, batch_size=64, shuffle=True)


def cnn(c1, c2, hidden=None):
    layers = [
        nn.Conv2d(1, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    ]
    if hidden:
        layers += [nn.Linear(c2 * 16, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 6)]
    else:
        layers += [nn.Linear(c2 * 16, 6)]
    return nn.Sequential(*layers)


def accuracy(model):
    model.eval()
    with torch.no_grad():
        logits = model(val_x)
    return F.cross_entropy(logits, val_y).item(), (logits.argmax(1) == val_y).float().mean().item()


teacher = cnn(32, 64, hidden=128)
student = cnn(8, 16)
T, soft_target_loss_weight, ce_loss_weight = 4.0, 0.75, 0.25
ce_loss = nn.CrossEntropyLoss()

with mlflow.start_run():
    # 1) the teacher, trained as usual
    opt_t = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    for epoch in range(4):
        teacher.train()
        running = 0.0
        for xb, yb in train_loader:
            opt_t.zero_grad()
            loss = ce_loss(teacher(xb), yb)
            loss.backward()
            opt_t.step()
            running += loss.item()
        mlflow.log_metric("teacher_train_loss", running / len(train_loader), step=epoch)
    teacher_val_loss, teacher_acc = accuracy(teacher)
    print(f"teacher: val_loss {teacher_val_loss:.4f} val_acc {teacher_acc:.3f}")

    # 2) the student, distilled
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    mlflow.log_params(
        {
            "T": T,
            "soft_target_loss_weight": soft_target_loss_weight,
            "ce_loss_weight": ce_loss_weight,
            "teacher_val_acc": round(teacher_acc, 4),
            "epochs": 10,
            "batch_size": 64,
        }
    )
    teacher.eval()
    for epoch in range(10):
        student.train()
        running = 0.0
        for xb, yb in train_loader:
            optimizer.zero_grad()
            with torch.no_grad():
                teacher_logits = teacher(xb)
            student_logits = student(xb)
            soft_targets = F.softmax(teacher_logits / T, dim=-1)
            soft_prob = F.log_softmax(student_logits / T, dim=-1)
            soft_targets_loss = F.kl_div(soft_prob, soft_targets, reduction="batchmean") * T**2
            label_loss = ce_loss(student_logits, yb)
            loss = soft_target_loss_weight * soft_targets_loss + ce_loss_weight * label_loss
            loss.backward()
            optimizer.step()
            running += loss.item()
        val_loss, val_acc = accuracy(student)
        metrics = {"train_loss": running / len(train_loader), "val_loss": val_loss, "val_acc": val_acc}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
