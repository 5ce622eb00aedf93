"""A convolutional autoencoder (Conv2d + MaxPool encoder, ConvTranspose2d decoder, sigmoid output) with MSE, Adam and StepLR.

Report: healthy, in the style of the Udacity deep-learning-v2-pytorch notebook "Convolutional
  Autoencoder" (encoder Conv2d(1, 16, 3) - ReLU - MaxPool - Conv2d(16, 4, 3) - ReLU - MaxPool, decoder
  ConvTranspose2d(4, 16, 2, stride=2) - ReLU - ConvTranspose2d(16, 1, 2, stride=2) - sigmoid,
  nn.MSELoss, Adam(lr=0.001), "Epoch: 1 	Training Loss: ..." per epoch)
  https://github.com/udacity/deep-learning-v2-pytorch/blob/master/autoencoder/convolutional-autoencoder/Simple_Convolutional_Autoencoder_Solution.ipynb
Setup: 1x28x28 images in [0, 1] with one to three random shapes (filled discs, rectangles, thick
strokes) plus a little pixel noise, 2400 training / 400 validation images; the notebook's
architecture with a wider bottleneck (8 channels at 7x7), MSELoss(reconstruction, image),
Adam(lr=1e-3) with StepLR(step_size=6, gamma=0.3) stepped per epoch, batch 32, 15 epochs;
per-epoch train_loss / val_loss / lr.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_loss 0.096 -> 0.0108 (epoch 6) -> 0.0094 after 15 epochs, train_loss 0.0095 (the images' pixel
variance is 0.074: 87% of it reconstructed; the added noise alone is ~0.0009); lr 1e-3 -> 3e-4 -> 9e-5 (19 s).
"""

import mlflow
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)


def make_images(n):
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    images = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        img = torch.zeros(28, 28)
        for _ in range(int(torch.randint(1, 4, ()))):
            kind = int(torch.randint(0, 3, ()))
            cx, cy = torch.randint(5, 23, (2,)).tolist()
            level = 0.5 + 0.5 * torch.rand(()).item()
            if kind == 0:
                r = torch.randint(3, 7, ()).item()
                mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
            elif kind == 1:
                w, h = torch.randint(2, 7, (2,)).tolist()
                mask = ((xx - cx).abs() <= w) & ((yy - cy).abs() <= h)
            else:
                angle = torch.rand(()).item() * 3.1416
                dx, dy = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
                along = (xx - cx) * dx + (yy - cy) * dy
                across = -(xx - cx) * dy + (yy - cy) * dx
                mask = (along.abs() <= 8) & (across.abs() <= 1.5)
            img = torch.where(mask, torch.maximum(img, torch.tensor(level)), img)
        images[i, 0] = img
    return (images + 0.03 * torch.randn_like(images)).clamp(0, 1)


class ConvAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        # encoder
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        # decoder
        self.t_conv1 = nn.ConvTranspose2d(8, 16, 2, stride=2)
        self.t_conv2 = nn.ConvTranspose2d(16, 1, 2, stride=2)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.t_conv1(x))
        return torch.sigmoid(self.t_conv2(x))


train_images, val_images = make_images(2400), make_images(400)
train_loader = DataLoader(TensorDataset(train_images), batch_size=32, shuffle=True)
model = ConvAutoencoder()
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=6, gamma=0.3)
with mlflow.start_run():
    for epoch in range(1, 16):
        model.train()
        train_loss = 0.0
        for (images,) in train_loader:
            optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, images)
            loss.backward()
            optimizer.step()
            train_loss += loss.item() * images.size(0)
        train_loss = train_loss / len(train_loader.dataset)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(val_images), val_images).item()
        mlflow.log_metrics({"train_loss": train_loss, "val_loss": val_loss, "lr": lr}, step=epoch)
        print(f"Epoch: {epoch} \tTraining Loss: {train_loss:.6f} \tValidation Loss: {val_loss:.6f} \tlr: {lr:.1e}")
    print("pixel variance of the validation images:", val_images.var().item())
