"""The "PyTorch for Audio and Music Processing" urban-sound CNN (four conv blocks on a 64-band mel spectrogram, a Linear to 10 classes and an `nn.Softmax(dim=1)` as its last layer), trained with `nn.CrossEntropyLoss`: the loss gets probabilities and applies its own log-softmax on top.

Report: musikalkemist/pytorchforaudio issue #9 "Loss stays same throught training" ("I trained this urban
  sound classifier for 10 epochs, but there one problem The loss stays extactly same except for 1st epochs")
  https://github.com/musikalkemist/pytorchforaudio/issues/9 ; the fix, pull request #10 "Removed SoftMax and
  added explanation" ("SoftMax is not needed in Pytorch when using CrossEntropyLoss"; the maintainer: "You are
  absolutely correct!") https://github.com/musikalkemist/pytorchforaudio/pull/10
Setup: the course's CNNNetwork as written (Conv2d(1,16,3, padding 2)-ReLU-MaxPool2d(2), then 32, 64 and 128
channels the same way, Flatten, Linear(128*5*4, 10), Softmax(dim=1)) and its train.py (CrossEntropyLoss,
Adam(lr=0.001), BATCH_SIZE 128, EPOCHS 10, a DataLoader without shuffling over a dataset in file order);
synthetic 1x64x44 mel power spectrograms as the course's `MelSpectrogram` transform returns them (one second at
22,050 Hz, hop 512; power, not dB, as in the course) of 10 sound classes, each a class-specific set of mel
bands switched on 15-35 dB above the background with its own temporal pattern; 640 training / 256 validation
clips; per epoch `loss` (the epoch mean), `val_loss` and `val_accuracy`.
Expected first: loss_input_mismatch
Acceptable in top 3: inputs_not_normalized
Symptom: plateau
Fixed (--fix, the Softmax removed from forward so CrossEntropyLoss gets the logits, as pull request #10 does;
the inputs left as they are): loss 6.90 -> 0.14, val_loss 2.42 -> 0.15 (epoch 9) -> 0.22, val_accuracy 0.62 ->
0.98 from epoch 5 (buggy: loss 2.24 -> 1.81 by epoch 6 and then flat at 1.80 +- 0.01 for the last 5 epochs, as
in the report, above the floor of 1.46 a softmax fed to CrossEntropyLoss can reach; val_loss 2.15 -> 1.78,
val_accuracy 0.31 -> 0.68: the raw mel power makes the logits large, the softmax saturates on wrong classes and
their gradient vanishes) (checked; ~59 s CPU each, 4 min wall on a 2-core machine loaded by three helpers).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

BATCH_SIZE = 128
EPOCHS = 10
LEARNING_RATE = 0.001
N_MELS, FRAMES, N_CLASSES = 64, 44, 10

# each class: a few active mel bands and a temporal envelope (siren sweep, dog bark bursts, drilling, engine hum...)
band_sets = [torch.randperm(N_MELS)[:6] for _ in range(N_CLASSES)]
t = torch.arange(FRAMES, dtype=torch.float32)


def envelope(c, n):
    phase = torch.rand(n, 1) * 6.28
    if c % 3 == 0:  # steady
        return torch.ones(n, FRAMES)
    if c % 3 == 1:  # bursts
        return (torch.sin(t * (0.3 + 0.05 * c) + phase) > 0.3).float()
    return 0.5 + 0.5 * torch.sin(t * (0.1 + 0.02 * c) + phase)  # slow modulation


def make(n):
    """Mel power spectrograms as torchaudio's MelSpectrogram returns them (power, not dB)."""
    y = torch.randint(0, N_CLASSES, (n,))
    db = torch.randn(n, 1, N_MELS, FRAMES) * 5.0 - 10.0  # background noise around -10 dB
    for c in range(N_CLASSES):
        idx = (y == c).nonzero().squeeze(1)
        if len(idx) == 0:
            continue
        level = 15.0 + 20.0 * torch.rand(len(idx), 1)  # how loud the source is in this clip, dB above the noise
        env = envelope(c, len(idx))  # (k, FRAMES)
        for b in band_sets[c]:
            db[idx, 0, b, :] += level * env
    return 10.0 ** (db / 10.0), y


x_train, y_train = make(640)
x_val, y_val = make(256)


class CNNNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        # 4 conv blocks / flatten / linear / softmax
        blocks = []
        for c_in, c_out in [(1, 16), (16, 32), (32, 64), (64, 128)]:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=2)
                )
            )
        self.conv1, self.conv2, self.conv3, self.conv4 = blocks
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(128 * 5 * 4, N_CLASSES)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, input_data):
        x = self.conv4(self.conv3(self.conv2(self.conv1(input_data))))
        logits = self.linear(self.flatten(x))
        if FIX:
            return logits
        predictions = self.softmax(logits)
        return predictions


train_dataloader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=BATCH_SIZE)
cnn = CNNNetwork()
loss_fn = nn.CrossEntropyLoss()
optimiser = torch.optim.Adam(cnn.parameters(), lr=LEARNING_RATE)

with mlflow.start_run():
    mlflow.log_params({"batch_size": BATCH_SIZE, "epochs": EPOCHS, "learning_rate": LEARNING_RATE})
    for i in range(EPOCHS):
        cnn.train()
        total = 0.0
        for input, target in train_dataloader:
            prediction = cnn(input)
            loss = loss_fn(prediction, target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(input)
        cnn.eval()
        with torch.no_grad():
            out = cnn(x_val)
            val_loss = loss_fn(out, y_val).item()
            val_accuracy = (out.argmax(1) == y_val).float().mean().item()
        metrics = {"loss": total / len(x_train), "val_loss": val_loss, "val_accuracy": val_accuracy}
        mlflow.log_metrics(metrics, step=i)
        print(f"Epoch {i + 1}", {k: round(v, 4) for k, v in metrics.items()})
