"""HF Trainer GPT-2 language model with warmup_steps=2000 on a run of 300 optimizer steps: the learning rate never gets past 15% of its set value.

Report: Morizeyao/GPT2-Chinese issue #60 "gradient_accumulation及warmup_steps参数问题" (the default
  warmup=2000 with lr=1.5e-4, translated: "if the total number of steps is < 2000, the real lr lies in [0, 1.5e-4);
  the fewer the steps, the smaller the lr, and it becomes hard to converge ... if I set lr=0.001 to
  converge faster, the lr only really reaches 0.001 at step 2000"; suggests a default warmup of 0)
  https://github.com/Morizeyao/GPT2-Chinese/issues/60
Setup: a character-level corpus: 50 "words" of 2-4 characters over 60 characters (0 = space),
sentences of 32 characters built from a word-level Markov chain (4 likely successors per word);
GPT2LMHeadModel(n_layer=2, n_head=4, n_embd=64, n_positions=32) from a GPT2Config, labels =
input_ids, HF Trainer, learning_rate=1e-3 (the reporter's), warmup_steps=2000 (the repository's
default), linear schedule, batch 16, 1600 training / 400 evaluation sentences, 3 epochs = 300 steps,
eval each epoch, logging_steps=10, report_to mlflow (loss, learning_rate, grad_norm, eval_loss).
Expected first: learning_rate_too_low
Acceptable in top 3: -
Symptom: not_converged
Fixed (--fix, warmup_steps=0, the report's suggested default): eval_loss 1.754 -> 1.350 -> 1.232 after 3
epochs, training loss 3.64 -> 1.34 (ln 60 = 4.09; the corpus' floor is ~0.4 nats per character) (buggy:
learning_rate 4.5e-6 at step 10 rising linearly to 1.5e-4 at step 300, 15% of the set 1e-3; training loss
3.99 -> 2.75 almost in a straight line, eval_loss 3.611 -> 3.111 -> 2.651, still falling fast at the end)
(checked; 17 s / 15 s).
"""

import sys

import mlflow
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
CHARS, LENGTH, N_WORDS = 60, 32, 50
words = [torch.randint(1, CHARS, (int(torch.randint(2, 5, ())),)).tolist() for _ in range(N_WORDS)]
successors = torch.stack([torch.randperm(N_WORDS)[:4] for _ in range(N_WORDS)])
successor_probs = torch.tensor([0.4, 0.3, 0.2, 0.1])


class SentenceDataset(torch.utils.data.Dataset):
    def __init__(self, n):
        self.items = []
        for _ in range(n):
            chars, word = [], int(torch.randint(0, N_WORDS, ()))
            while len(chars) < LENGTH:
                chars += words[word] + [0]
                word = int(successors[word, torch.multinomial(successor_probs, 1)])
            self.items.append(torch.tensor(chars[:LENGTH]))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return {
            "input_ids": self.items[i],
            "attention_mask": torch.ones(LENGTH, dtype=torch.long),
            "labels": self.items[i],
        }


config = GPT2Config(
    vocab_size=CHARS, n_positions=LENGTH, n_embd=64, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0
)
model = GPT2LMHeadModel(config)
args = TrainingArguments(
    output_dir="out",
    learning_rate=1e-3,
    warmup_steps=0 if FIX else 2000,
    num_train_epochs=3,
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
trainer = Trainer(model=model, args=args, train_dataset=SentenceDataset(1600), eval_dataset=SentenceDataset(400))
trainer.train()
print(trainer.evaluate())
