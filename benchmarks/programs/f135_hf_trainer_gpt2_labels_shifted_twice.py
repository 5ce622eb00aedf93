"""HF Trainer GPT-2 from a config whose dataset already shifts the labels (input_ids = ids[:-1], labels = ids[1:]): GPT2LMHeadModel shifts them again, so every position is trained to predict the token two ahead.

Report: huggingface/transformers pull request #44642 "Clarify that causal LM labels are shifted
  internally" ("This has tripped up a lot of users who pre-shift their labels and end up training
  next-next-token prediction by accident ... users should pass `labels = input_ids`"; fixes issue #32944)
  https://github.com/huggingface/transformers/pull/44642 (the same mistake was fixed in the
  RocStories example by pull request #562, "remove the one shifting of lm labels since this shift
  happens internally during the model's forward pass")
Setup: a bilingual word list: 30 English and 30 French "words" (token ids 1-30 and 31-60), each line
12 dictionary pairs in random order (English word, then its French translation: the French word is
fixed by the English one, the next English word is random), 24 tokens per line; the dataset is built
the nanoGPT / char-rnn way, `x = ids[:-1]`, `y = ids[1:]`, and handed to the Trainer as input_ids and
labels; GPT2LMHeadModel(n_layer=2, n_head=4, n_embd=64, n_positions=24) from a GPT2Config, HF Trainer,
learning_rate=1e-3, linear decay, batch 16, 1200 training / 300 evaluation lines, 2 epochs = 150 steps,
eval each epoch, logging_steps=10, report_to mlflow (loss, learning_rate, grad_norm, eval_loss).
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, labels = input_ids as the report says, the model shifts them itself): training loss
3.64 at step 10 -> 1.90 at step 150, eval_loss 2.079 -> 1.856 after 2 epochs (the floor: ln 30 = 3.40
for each English word, 0 for each translation, 1.63 in the Trainer's units) (buggy: training loss 3.76
at step 10 -> 3.30 by step 60 and flat there to the end (3.28), eval_loss 3.288 -> 3.278: the word two
ahead is a random English word or the translation of one, ln 30 x 22/23 = 3.25 in the Trainer's units
(it divides by all 23 labels, one of which the shift drops), so nothing beyond the word frequencies is
learnable) (checked; 24 s / 23 s wall with OMP_NUM_THREADS=1 as the runner sets, ~19 s CPU).
"""

import sys

import mlflow
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
N_WORDS, PAIRS = 30, 12
VOCAB = 2 * N_WORDS + 1  # 0 unused (pad), English 1..50, French 51..100
translation = torch.randperm(N_WORDS) + N_WORDS + 1  # French id of each English word


class GlossaryDataset(torch.utils.data.Dataset):
    def __init__(self, n):
        english = torch.randint(1, N_WORDS + 1, (n, PAIRS))
        self.lines = torch.stack([english, translation[english - 1]], dim=2).reshape(n, 2 * PAIRS)

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        ids = self.lines[i]
        x = ids[:-1]
        y = x.clone() if FIX else ids[1:]  # the bug: shifted here, and again inside GPT2LMHeadModel
        return {"input_ids": x, "attention_mask": torch.ones_like(x), "labels": y}


config = GPT2Config(
    vocab_size=VOCAB, n_positions=2 * PAIRS, n_embd=64, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0
)
model = GPT2LMHeadModel(config)
args = TrainingArguments(
    output_dir="out",
    learning_rate=1e-3,
    num_train_epochs=2,
    per_device_train_batch_size=16,
    per_device_eval_batch_size=64,
    eval_strategy="epoch",
    logging_steps=10,
    save_strategy="no",
    report_to=["mlflow"],
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
)
trainer = Trainer(model=model, args=args, train_dataset=GlossaryDataset(1200), eval_dataset=GlossaryDataset(300))
trainer.train()
print(trainer.evaluate())
