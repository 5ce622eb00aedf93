"""TorchLeet's "Transformer" exercise (h3): a Linear embedding, an `nn.TransformerEncoder` of two `nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=64)`, mean pooling over the sequence and a Linear head, trained full-batch with Adam to predict the sum of a random sequence; the data are (batch, seq, feature) but the layer is built without `batch_first=True`, so PyTorch reads them as (seq, batch, feature): self-attention mixes the 100 different sequences at each position instead of the 10 positions of one sequence.

Report: Exorust/TorchLeet issue #5 "In h3, we should pass batch_first=True to TransformerEncoderLayer" ("Torch by
  default uses `batch_first=False` for the `TransformerEncoderLayer`, resulting in high training loss and test
  error", with the loss curves with and without `batch_first=True`; the maintainer: "Totally valid")
  https://github.com/Exorust/TorchLeet/issues/5
Setup: the exercise's code: X = torch.rand(100, 10, 1), y = X.sum(dim=1) (targets 2.6-7.6), input_dim 1,
embed_dim 16, num_heads 2, num_layers 2, ff_dim 64 (dropout 0.1, the layer's default), MSELoss,
Adam(lr=0.001), 1,000 full-batch epochs, torch.manual_seed(42); the exercise prints the loss every 100
epochs and predicts two fresh sequences at the end, the issue compared training loss and test error, so here
`train_loss` and `test_loss` (100 fresh sequences, model.eval()) are logged every 10 epochs with
`mlflow.log_metrics`.
Expected first: not_converged
Acceptable in top 3: -
Symptom: not_converged
Fixed (--fix, `nn.TransformerEncoderLayer(..., batch_first=True)` as the issue proposes): train_loss 1.42 (epoch
100) -> 0.161 (300) -> 0.047 (500) -> 0.020 at epoch 1000, test_loss 1.36 -> 0.141 -> 0.027 -> 0.011 (best
0.0069 at epoch 900), flat over the last 300 epochs (buggy: train_loss 1.42 -> 0.614 (300) -> 0.192 (500) ->
0.042 at epoch 1000, test_loss 1.37 -> 0.504 -> 0.168 -> 0.029, still falling at the end: the same loss is
reached about twice as late and the run ends at two to three times the fixed run's error) (checked; 144 s /
88 s wall, 39 s / 29 s CPU, on the 2-core machine shared by four helpers; the exercise's 2e-2-scale losses
are the sum's variance of 0.9 cut by 20-40 times in both runs).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.set_num_threads(1)


class TransformerModel(nn.Module):
    def __init__(self, input_dim, embed_dim, num_heads, num_layers, ff_dim, output_dim):
        super().__init__()
        self.embedding = nn.Linear(input_dim, embed_dim)
        encoder_layer = nn.TransformerEncoderLayer(
            d_model=embed_dim, nhead=num_heads, dim_feedforward=ff_dim, batch_first=FIX
        )
        self.transformer = nn.TransformerEncoder(encoder_layer, num_layers=num_layers, enable_nested_tensor=False)
        self.output_layer = nn.Linear(embed_dim, output_dim)

    def forward(self, x):
        x = self.embedding(x)
        x = self.transformer(x)
        x = x.mean(dim=1)  # Pooling across the sequence
        return self.output_layer(x)


# Generate synthetic data
torch.manual_seed(42)
seq_length = 10
num_samples = 100
input_dim = 1
X = torch.rand(num_samples, seq_length, input_dim)  # Random sequences
y = torch.sum(X, dim=1)  # Target is the sum of each sequence
X_test = torch.rand(num_samples, seq_length, input_dim)
y_test = torch.sum(X_test, dim=1)

embed_dim, num_heads, num_layers, ff_dim, output_dim = 16, 2, 2, 64, 1
model = TransformerModel(input_dim, embed_dim, num_heads, num_layers, ff_dim, output_dim)
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.001)

with mlflow.start_run():
    mlflow.log_params({"lr": 0.001, "epochs": 1000, "embed_dim": embed_dim, "batch_first": FIX})
    epochs = 1000
    for epoch in range(epochs):
        model.train()
        predictions = model(X)
        loss = criterion(predictions, y)

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        if (epoch + 1) % 10 == 0:
            model.eval()
            with torch.no_grad():
                test_loss = criterion(model(X_test), y_test).item()
            mlflow.log_metrics({"train_loss": loss.item(), "test_loss": test_loss}, step=epoch + 1)
        if (epoch + 1) % 100 == 0:
            print(f"Epoch [{epoch + 1}/{epochs}], Loss: {loss.item():.4f}, Test loss: {test_loss:.4f}")
