"""A multi-task LightningModule on tabular data: one shared MLP trunk, a classification head (CrossEntropyLoss) and a regression head (MSELoss on standardised targets), trained on their weighted sum with AdamW, a cosine schedule and early stopping on the validation loss.

Report: healthy, in the style of the Lightning multi-task examples and forum answers (a shared encoder with
  one head per task in one LightningModule, `loss = loss_cls + w * loss_reg` returned from
  `training_step`, each part logged with `self.log`, `EarlyStopping(monitor="val_loss")`, and a scheduler
  from `configure_optimizers`) https://lightning.ai/docs/pytorch/stable/common/lightning_module.html
Setup: synthetic customer records: 16 standardised numeric features, a 4-class segment label
(a nonlinear function of the features, 8% of labels flipped) and a spending target (another
nonlinear function plus noise, standardised with the training split's mean and std); trunk
Linear(16, 64)-ReLU-Dropout(0.1)-Linear(64, 64)-ReLU, heads Linear(64, 4) and Linear(64, 1);
loss = CE + 0.5 * MSE; AdamW(lr=3e-3, weight_decay=1e-2), CosineAnnealingLR(T_max=20) stepped per epoch,
batch 64, 2400 training / 600 validation rows, up to 20 epochs with EarlyStopping(patience=3); self.log
train_loss / train_loss_cls / train_loss_reg per step (every 10 steps) and val_loss / val_acc /
val_mae per epoch, lr per step.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (healthy; reached): val_loss 1.341 -> 1.036 (epoch 4) -> 0.897 (epoch 9) -> 0.876 at epoch 20,
the best 0.8756 at epoch 17 (early stopping did not cut the run short: 3 epochs without a new best
only by epoch 20, the last);
val_acc 0.57 -> 0.67 -> 0.74 -> 0.755 (8% of the labels flipped at random);
val_mae 0.84 -> 0.71 in the target's units (noise std 0.3); lr 3e-3 annealed to 0 by epoch 20; per-epoch
train_loss noisy around 0.65-0.9 (dropout, one batch's value) (checked; 1 min 57 s CPU, 14 min 46 s wall on a 2-core machine loaded ~10-17x by other jobs; most of it
Lightning, autolog and model logging overhead).
"""

import lightning.pytorch as pl
import mlflow
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)

N_FEATURES = 16
W1 = torch.randn(N_FEATURES, 4)
W2 = torch.randn(N_FEATURES, 3)


def make_records(n):
    x = torch.randn(n, N_FEATURES)
    scores = torch.tanh(x @ W1) + 0.3 * (x[:, :4] ** 2)
    segment = scores.argmax(dim=1)
    flip = torch.rand(n) < 0.08
    segment[flip] = torch.randint(0, 4, (int(flip.sum()),))
    h = x @ W2
    spend = torch.sin(h[:, 0]) + 0.5 * h[:, 1] * torch.sigmoid(h[:, 2]) + 0.3 * torch.randn(n)
    return x, segment, spend


x_tr, seg_tr, spend_tr = make_records(2400)
x_va, seg_va, spend_va = make_records(600)
mean, std = spend_tr.mean(), spend_tr.std()
train_loader = DataLoader(TensorDataset(x_tr, seg_tr, (spend_tr - mean) / std), batch_size=64, shuffle=True)
val_loader = DataLoader(TensorDataset(x_va, seg_va, (spend_va - mean) / std), batch_size=200)


class MultiTaskModel(pl.LightningModule):
    def __init__(self, lr=3e-3, reg_weight=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(nn.Linear(N_FEATURES, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU())
        self.cls_head = nn.Linear(64, 4)
        self.reg_head = nn.Linear(64, 1)
        self.ce = nn.CrossEntropyLoss()
        self.mse = nn.MSELoss()

    def forward(self, x):
        h = self.trunk(x)
        return self.cls_head(h), self.reg_head(h).squeeze(1)

    def _losses(self, batch):
        x, segment, spend = batch
        logits, pred = self(x)
        return logits, pred, self.ce(logits, segment), self.mse(pred, spend)

    def training_step(self, batch, batch_idx):
        _, _, loss_cls, loss_reg = self._losses(batch)
        loss = loss_cls + self.hparams.reg_weight * loss_reg
        self.log_dict({"train_loss": loss, "train_loss_cls": loss_cls, "train_loss_reg": loss_reg})
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def validation_step(self, batch, batch_idx):
        logits, pred, loss_cls, loss_reg = self._losses(batch)
        segment, spend = batch[1], batch[2]
        self.log("val_loss", loss_cls + self.hparams.reg_weight * loss_reg)
        self.log("val_acc", (logits.argmax(dim=1) == segment).float().mean())
        self.log("val_mae", ((pred - spend).abs() * std).mean())  # in the target's own units

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


trainer = pl.Trainer(
    max_epochs=20,
    callbacks=[EarlyStopping(monitor="val_loss", patience=3)],
    logger=False,
    log_every_n_steps=10,
    enable_progress_bar=False,
    enable_checkpointing=False,
    enable_model_summary=False,
)
trainer.fit(MultiTaskModel(), train_loader, val_loader)
print("stopped at epoch", trainer.current_epoch, {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()})
