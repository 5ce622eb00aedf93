"""A GPT double-heads model (language-model head + multiple-choice head) fine-tuned on a ROCStories-style story-ending task by the transformers example script run_openai_gpt.py, whose training loop calls `loss.backward()` and `optimizer.step()` but never `optimizer.zero_grad()`: every step adds its gradient into the sum of all the earlier ones, Adam follows the stale running sum, and the multiple-choice accuracy stalls at 62% (chance 50%) where the fixed loop reaches 83%.

Report: huggingface/transformers issue #340 "optimizer.zero_grad() in run_openai_gpt.py?" ("In
  `run_openai_gpt.py`, should there be a call to `optimizer.zero_grad()` after updating parameters so that we
  zero out the gradients between minibatches?"; thomwolf: "Oh that's a mistake indeed, thanks for pointing
  out. Fixed on master.") https://github.com/huggingface/transformers/issues/340
Setup: the example's loop as it stood: `losses = model(input_ids, mc_token_ids, lm_labels, mc_labels)`,
`loss = args.lm_coef * lm_loss + mc_loss` (lm_coef 0.9), `loss.backward()`, `optimizer.step()`, the
exponential average `0.7 * avg + 0.3 * loss` shown as "Training loss ... lr ..."; here GPT2DoubleHeadsModel
built from a small config (2 layers, 64-d, 4 heads; nothing is downloaded, so it trains from scratch and the
rate is AdamW's 1e-3 rather than the pretrained fine-tune's 6.25e-5), AdamW(weight_decay=0.01) with a linear
warm-up (2% of the steps) and linear decay, clip_grad_norm_(p, 1.0) on each parameter tensor (OpenAIAdam's
max_grad_norm, in place on the .grad it then keeps adding to), batch 16, 3 epochs of 1,600 synthetic "stories" (12 tokens following an arithmetic pattern of step k in a vocabulary of
40) with two 4-token endings, the right one continuing the pattern, the wrong one continuing it with another
step; `[start] story [delim] ending [clf]`, mc_token_ids at the `[clf]` token, LM labels on the right ending's sequence
(-100 on the other); `loss` (the exponential average, as the script prints it) and `lr` every 5 steps, eval_loss,
eval_mc_loss and eval_accuracy on 400 held-out stories per epoch.
Expected first: gradients_not_zeroed
Acceptable in top 3: -
Symptom: not_converged, plateau
Fixed (--fix, `optimizer.zero_grad()` after `optimizer.step()`, as the fixed example has it): eval_accuracy
0.53 -> 0.615 -> 0.83, eval_mc_loss 0.691 -> 0.658 -> 0.476, eval_loss 2.29 -> 1.97 -> 1.72, `loss` 1.89 at the
end (buggy: eval_accuracy 0.56 -> 0.628 -> 0.623, eval_mc_loss 0.692 -> 0.681 -> 0.625, eval_loss 2.42 -> 2.13 ->
1.94, `loss` 2.01 at the end: the multiple-choice head stalls near chance, and the whole loss falls more slowly
and is still falling) (checked; 110 s / 98 s wall, ~30 s CPU each, on the 2-core machine shared by three
helpers, OMP_NUM_THREADS=1; an earlier variant with one global clip_grad_norm_ gave 0.735 vs 0.93).
"""

import sys

import mlflow
import torch
from transformers import GPT2Config, GPT2DoubleHeadsModel, get_linear_schedule_with_warmup

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(42)

VOCAB, STORY, ENDING = 40, 12, 4
START, DELIM, CLF = VOCAB, VOCAB + 1, VOCAB + 2
SEQ = 1 + STORY + 1 + ENDING + 1
lm_coef, lr, batch_size, num_train_epochs, warmup_proportion = 0.9, 1e-3, 16, 3, 0.02


def make_dataset(n):
    """ROCStories-like: a story, a right ending (the same pattern) and a wrong one (another step)."""
    start = torch.randint(0, VOCAB, (n, 1))
    k = torch.randint(1, 6, (n, 1))
    t = torch.arange(STORY + ENDING).unsqueeze(0)
    seq = (start + k * t) % VOCAB
    story, right = seq[:, :STORY], seq[:, STORY:]
    other = k + torch.randint(1, 5, (n, 1))
    wrong = (story[:, -1:] + other * torch.arange(1, ENDING + 1).unsqueeze(0)) % VOCAB
    mc_labels = torch.randint(0, 2, (n,))
    endings = torch.stack([right, wrong], 1)
    endings[mc_labels == 1] = endings[mc_labels == 1].flip(1)
    head = torch.cat([torch.full((n, 1), START), story, torch.full((n, 1), DELIM)], 1)
    input_ids = torch.stack([torch.cat([head, endings[:, c], torch.full((n, 1), CLF)], 1) for c in range(2)], 1)
    mc_token_ids = torch.full((n, 2), SEQ - 1)
    lm_labels = torch.full_like(input_ids, -100)
    for i in range(n):  # the LM loss only on the right ending's sequence, as the example does
        lm_labels[i, mc_labels[i]] = input_ids[i, mc_labels[i]]
    return torch.utils.data.TensorDataset(input_ids, mc_token_ids, lm_labels, mc_labels)


train_data, eval_data = make_dataset(1600), make_dataset(400)
train_dataloader = torch.utils.data.DataLoader(train_data, batch_size=batch_size, shuffle=True)
eval_dataloader = torch.utils.data.DataLoader(eval_data, batch_size=100)

config = GPT2Config(
    vocab_size=VOCAB + 3, n_positions=32, n_embd=64, n_layer=2, n_head=4, resid_pdrop=0.1, embd_pdrop=0.1,
    attn_pdrop=0.1, summary_first_dropout=0.1, bos_token_id=START, eos_token_id=CLF,
)  # fmt: skip
model = GPT2DoubleHeadsModel(config)
param_optimizer = list(model.named_parameters())
no_decay = ["bias", "ln_1.weight", "ln_2.weight", "ln_f.weight"]
optimizer_grouped_parameters = [
    {"params": [p for n, p in param_optimizer if not any(nd in n for nd in no_decay)], "weight_decay": 0.01},
    {"params": [p for n, p in param_optimizer if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
]
num_train_optimization_steps = len(train_dataloader) * num_train_epochs
optimizer = torch.optim.AdamW(optimizer_grouped_parameters, lr=lr)
scheduler = get_linear_schedule_with_warmup(
    optimizer, int(warmup_proportion * num_train_optimization_steps), num_train_optimization_steps
)

with mlflow.start_run():
    mlflow.log_params(
        {"lr": lr, "lm_coef": lm_coef, "train_batch_size": batch_size, "num_train_epochs": num_train_epochs}
    )
    nb_tr_steps, exp_average_loss = 0, None
    for epoch in range(num_train_epochs):
        model.train()
        for input_ids, mc_token_ids, lm_labels, mc_labels in train_dataloader:
            out = model(input_ids, mc_token_ids=mc_token_ids, labels=lm_labels, mc_labels=mc_labels)
            loss = lm_coef * out.loss + out.mc_loss
            loss.backward()
            for p in model.parameters():  # OpenAIAdam's max_grad_norm=1: each tensor clipped on its own
                torch.nn.utils.clip_grad_norm_(p, 1.0)
            optimizer.step()
            scheduler.step()
            if FIX:
                optimizer.zero_grad()
            exp_average_loss = loss.item() if exp_average_loss is None else 0.7 * exp_average_loss + 0.3 * loss.item()
            nb_tr_steps += 1
            if nb_tr_steps % 5 == 0:
                mlflow.log_metrics({"loss": exp_average_loss, "lr": scheduler.get_last_lr()[0]}, step=nb_tr_steps)
        model.eval()
        eval_loss = eval_mc_loss = eval_accuracy = 0.0
        with torch.no_grad():
            for input_ids, mc_token_ids, lm_labels, mc_labels in eval_dataloader:
                out = model(input_ids, mc_token_ids=mc_token_ids, labels=lm_labels, mc_labels=mc_labels)
                eval_loss += (lm_coef * out.loss + out.mc_loss).item() * len(mc_labels)
                eval_mc_loss += out.mc_loss.item() * len(mc_labels)
                eval_accuracy += (out.mc_logits.argmax(1) == mc_labels).sum().item()
        n = len(eval_data)
        result = {"eval_loss": eval_loss / n, "eval_mc_loss": eval_mc_loss / n, "eval_accuracy": eval_accuracy / n}
        mlflow.log_metrics(result, step=nb_tr_steps)
        print(f"epoch {epoch} step {nb_tr_steps} train loss {exp_average_loss:.3f}", result)
