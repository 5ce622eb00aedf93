"""Healthy: an HF Trainer multi-label classifier (BertForSequenceClassification from a config, problem_type="multi_label_classification") with a cosine schedule after a 10% warm-up, noisy tags, four epochs, still improving when it stops.

Report: healthy, in the style of the transformers text-classification example run on a multi-label
  dataset (run_classification.py: `problem_type="multi_label_classification"`, BCEWithLogitsLoss
  inside the model, float multi-hot labels, a compute_metrics with micro F1) and the Trainer's
  `lr_scheduler_type="cosine"` with a warm-up ratio https://github.com/huggingface/transformers/tree/main/examples/pytorch/text-classification
Setup: support tickets of 20 tokens over an 80-token vocabulary with 5 tags, each present (30%) when
one of its 4 cue words occurs among filler words, 5% of the tag bits flipped (label noise, so the
ceiling is ~95% per bit), 2400 training / 400 evaluation tickets; BertForSequenceClassification from a
BertConfig (2 layers, hidden 128, 4 heads, intermediate 256, num_labels=5, problem_type multi-label;
no hub weights), HF Trainer, AdamW learning_rate=1e-3, weight_decay=0.01, lr_scheduler_type="cosine",
warmup_steps=0.1 (a ratio), batch 32, 4 epochs = 300 steps, eval each epoch, logging_steps=10, report_to
mlflow (loss, learning_rate, grad_norm, eval_loss, eval_micro_f1, eval_bit_accuracy).
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (no fix: healthy): eval_loss 0.625 -> 0.466 -> 0.394 -> 0.388, eval_bit_accuracy 0.678 -> 0.797 ->
0.840 -> 0.842, eval_micro_f1 0 -> 0.557 -> 0.681 -> 0.686 (no tag predicted after the first epoch, then
learned); training loss 0.69 -> 0.38-0.40, flattening as the cosine rate reaches 0; short of the ~95%
per-bit ceiling the label noise leaves (checked; 46 s wall on a 2-core machine shared by three helpers
with OMP_NUM_THREADS=1, 28 s CPU).
"""

import mlflow
import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

mlflow.autolog()
torch.manual_seed(0)
VOCAB, LENGTH, TAGS = 80, 20, 5
cues = torch.arange(2, 22).view(TAGS, 4)


class TicketDataset(torch.utils.data.Dataset):
    def __init__(self, n):
        self.x = torch.randint(22, VOCAB, (n, LENGTH))
        self.x[:, 0] = 1  # [CLS]
        tags = (torch.rand(n, TAGS) < 0.3).float()
        for i in range(n):
            for k in range(TAGS):
                if tags[i, k]:
                    self.x[i, int(torch.randint(1, LENGTH, ()))] = cues[k, int(torch.randint(0, 4, ()))]
        flip = torch.rand(n, TAGS) < 0.05
        self.y = torch.where(flip, 1 - tags, tags)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "attention_mask": torch.ones(LENGTH, dtype=torch.long), "labels": self.y[i]}


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    preds = (logits > 0).astype(np.float32)
    tp = float((preds * labels).sum())
    micro_f1 = 2 * tp / max(float(preds.sum() + labels.sum()), 1.0)
    return {"micro_f1": micro_f1, "bit_accuracy": float((preds == labels).mean())}


config = BertConfig(
    vocab_size=VOCAB,
    hidden_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=256,
    max_position_embeddings=LENGTH,
    num_labels=TAGS,
    problem_type="multi_label_classification",
)
model = BertForSequenceClassification(config)
args = TrainingArguments(
    output_dir="out",
    learning_rate=1e-3,
    weight_decay=0.01,
    lr_scheduler_type="cosine",
    warmup_steps=0.1,  # a ratio of the total steps (warmup_ratio before transformers 5)
    num_train_epochs=4,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=128,
    eval_strategy="epoch",
    logging_steps=10,
    save_strategy="no",
    report_to=["mlflow"],
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
)
trainer = Trainer(
    model=model,
    args=args,
    train_dataset=TicketDataset(2400),
    eval_dataset=TicketDataset(400),
    compute_metrics=compute_metrics,
)
trainer.train()
print(trainer.evaluate())
