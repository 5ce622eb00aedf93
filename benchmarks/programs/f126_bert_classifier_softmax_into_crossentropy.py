"""A BERT news classifier (a transformers BertModel built from its config, the pooled output through a Linear head) whose forward returns `softmax(logits)`, fed to nn.CrossEntropyLoss, which applies log_softmax again: the loss cannot fall below ~1.46 for 10 classes and its gradients are squashed.

Report: illiterate/BertClassifier issue #2 "CrossEntropyLoss内置log_softmax，不需要在模型输出层额外添加softmax"
  (CrossEntropyLoss has log_softmax built in, no softmax is needed on the output layer: "训练模型时，loss下降非常缓慢"
  (the loss falls very slowly while training) ... "相当于做了两次的softmax ... 模型难以收敛" (it amounts to two
  softmaxes ... the model has a hard time converging); fix: remove the softmax from the model's output layer;
  the author: "好的，感谢指出错误" (OK, thanks for pointing out the mistake)) https://github.com/illiterate/BertClassifier/issues/2
Setup: as the repository's model.py / train.py: `BertClassifier` = `BertModel(config=bert_config)`, pooled output
`bert_output[1]` -> Linear(hidden, num_labels) -> `nn.functional.softmax(logits, 1)`; nn.CrossEntropyLoss,
AdamW, `model.zero_grad(); loss.backward(); optimizer.step()`, accuracy from argmax of the output; 10 news
classes (the cnews labels 体育 ... 财经); here a tiny BERT config (hidden 64, 2 layers, 2 heads, intermediate
128, vocab 300, max length 48) on synthetic token-id "articles" (each class has its own topic words,
mixed ~2:3 with words common to all classes, 20-46 tokens, [CLS]/[SEP], zero padding with attention_mask),
1,000 training / 250 validation articles, batch 8, 6 epochs, lr 5e-4 (the repository's 5e-6 would barely
move a BERT trained from its config at this size); per epoch train_loss / train_acc and valid_loss /
valid_acc, the names of the repository's output.txt.
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, the softmax removed, CrossEntropyLoss given the logits): valid_acc 0.44 -> 0.83 -> 0.969
(epoch 4) -> 0.957 after 6 epochs, valid_loss 1.77 -> 0.147, train_loss 2.23 -> 0.092, train_acc 0.99
(buggy: train_loss 2.290 -> 2.063 -> 1.829, valid_loss 2.19 -> 1.96 (epochs 3-5) -> 1.87, close to
ln 10 = 2.30 and bounded below by 1.46 for 10 classes; valid_acc 0.34 -> 0.51 (stuck for 3 epochs) ->
0.625, train_acc 0.66) (checked; 122 s / 46 s wall on a 2-core machine loaded by three helpers, ~35 s
CPU each, mostly imports, OMP_NUM_THREADS=1).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from transformers import BertConfig, BertModel

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
labels = ["体育", "娱乐", "家居", "房产", "教育", "时尚", "时政", "游戏", "科技", "财经"]
num_labels = len(labels)
VOCAB, MAX_LEN, CLS, SEP = 300, 48, 101, 102
COMMON = np.arange(110, 300)  # words every class uses
TOPIC = [np.arange(110 + 19 * k, 110 + 19 * k + 19) for k in range(num_labels)]  # overlaps the common pool


def article(label):
    n = int(rng.integers(20, MAX_LEN - 1))
    words = np.where(rng.random(n) < 0.4, rng.choice(TOPIC[label], n), rng.choice(COMMON, n))
    ids = [CLS, *words.tolist(), SEP]
    mask = [1] * len(ids) + [0] * (MAX_LEN - len(ids))
    return ids + [0] * (MAX_LEN - len(ids)), mask


def load_data(n):
    label_ids = rng.integers(0, num_labels, n)
    input_ids, attention_mask = zip(*(article(y) for y in label_ids))
    input_ids = torch.tensor(input_ids, dtype=torch.long)
    attention_mask = torch.tensor(attention_mask, dtype=torch.long)
    token_type_ids = torch.zeros_like(input_ids)
    return TensorDataset(input_ids, attention_mask, token_type_ids, torch.tensor(label_ids))


class BertClassifier(nn.Module):
    def __init__(self, bert_config):
        super().__init__()
        self.bert = BertModel(config=bert_config)
        self.classifier = nn.Linear(bert_config.hidden_size, bert_config.num_labels)
        self.softmax = nn.functional.softmax

    def forward(self, input_ids, attention_mask, token_type_ids):
        bert_output = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        pooled = bert_output[1]
        logits = self.classifier(pooled)
        return logits if FIX else self.softmax(logits, 1)


train_data, valid_data = load_data(1000), load_data(250)
batch_size = 8
train_dataloader = DataLoader(train_data, batch_size=batch_size, shuffle=True)
valid_dataloader = DataLoader(valid_data, batch_size=batch_size, shuffle=False)
bert_config = BertConfig(
    vocab_size=VOCAB,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=128,
    max_position_embeddings=MAX_LEN,
)
bert_config.num_labels = num_labels
model = BertClassifier(bert_config)
EPOCHS = 6
learning_rate = 5e-4
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
criterion = nn.CrossEntropyLoss()


def run_epoch(loader, train):
    model.train(train)
    losses, accuracy = 0.0, 0.0
    for batch in loader:
        input_ids, attention_mask, token_type_ids, label_ids = batch
        with torch.set_grad_enabled(train):
            output = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            loss = criterion(output, label_ids)
        losses += loss.item()
        pred_labels = torch.argmax(output, dim=1)
        accuracy += torch.sum(pred_labels == label_ids).item() / len(pred_labels)
        if train:
            model.zero_grad()
            loss.backward()
            optimizer.step()
    return losses / len(loader), accuracy / len(loader)


with mlflow.start_run():
    mlflow.log_params({"batch_size": batch_size, "learning_rate": learning_rate, "epochs": EPOCHS})
    for epoch in range(1, EPOCHS + 1):
        train_loss, train_acc = run_epoch(train_dataloader, True)
        valid_loss, valid_acc = run_epoch(valid_dataloader, False)
        metrics = {"train_loss": train_loss, "train_acc": train_acc, "valid_loss": valid_loss, "valid_acc": valid_acc}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
