"""The failure catalog: every cause the auditor can name, with its stable id.

The ids are a public contract (they become MLflow tags users filter and alert on): never
rename or drop one. This module holds what a user should *know* about each cause (what it
looks like, why it hurts, how to fix it); how a cause is *decided* lives in its rule under
`mlflow_nnaudit/auditor/rules/`. `docs/causes.md` is generated from both
(`python -m mlflow_nnaudit.auditor.docgen`), so nothing is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The kinds of cause, which decide a run's status ("status follows harm", spec/causes.md):
#: - `outcome`: harm seen in the run's outcome (the loss blew up, stalled, diverged, overfit,
#:   ended far worse than it could). Makes the run `warning` or `failed`.
#: - `bug`: a definite bug (softmax into CrossEntropyLoss, gradients never zeroed, a parameter
#:   that can never learn). Makes the run `warning` or `failed` even when the curves look fine.
#: - `risk`: a set-up smell (large targets, a constant border pixel, skewed labels). On a run
#:   that shows harm it is listed among the causes that may explain it; on a run that trained
#:   well it is an advisory and the run stays `healthy`.
OUTCOME, BUG, RISK = "outcome", "bug", "risk"
KINDS = (OUTCOME, BUG, RISK)


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    category: str  # "data", "model", "loss", "optimisation", "dynamics"
    evidence: str  # "R", "C" or "R+C": recorder, curves, or both
    looks_like: str
    why_it_hurts: str
    how_to_fix: str
    #: what a finding of this cause says about the run's status (see `KINDS`): harm seen in the
    #: outcome, a definite bug, or a set-up risk that is an advisory unless the run shows harm
    kind: str = "risk"
    kind_reason: str = ""  # one line: why this cause has this kind (shown in docs/causes.md)
    #: a short past-tense phrase for the upstream cause's recommendation when this finding is its
    #: consequence ("This is also why the loss turned NaN and the ReLUs died.")
    as_consequence: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"cause {self.id}: kind {self.kind!r} is not one of {KINDS}")


CAUSES: tuple[Cause, ...] = (
    # One entry per id of the spec's catalog (causes.md), in its order.
    Cause(
        id="inputs_not_normalized",
        title="Inputs not normalised",
        category="data",
        evidence="R",
        kind="risk",
        kind_reason="a scale smell: many runs train well on unscaled inputs, so it explains harm but is not harm",
        looks_like=(
            "Sampled batches show input features whose mean is far from zero or whose spread is far from "
            "one, such as raw pixel values in 0..255, columns in the thousands, or columns whose scales "
            "differ by orders of magnitude. The loss often starts very high, jumps around, or falls only "
            "slowly."
        ),
        why_it_hurts=(
            "Default weight initialisations, activation functions and optimiser step sizes all assume inputs "
            "of roughly zero mean and unit variance. Large or uneven scales give huge pre-activations and "
            "gradients, and let the largest-scale features dominate the early updates regardless of how "
            "informative they are."
        ),
        how_to_fix=(
            "Standardise each feature with a mean and standard deviation computed on the training split "
            "only, and apply those same numbers to validation and test data. For images, "
            "`torchvision.transforms.ToTensor()` maps 0..255 to 0..1, and `transforms.Normalize(mean, std)` "
            "then centres each channel. For tabular data, fit `sklearn.preprocessing.StandardScaler` on the "
            "training set, and apply a log transform to heavy-tailed positive features before scaling."
        ),
    ),
    Cause(
        id="targets_not_normalized",
        title="Regression targets not scaled",
        category="data",
        evidence="R+C",
        kind="risk",
        kind_reason="a scale smell: a regression on large targets can still converge to a small loss",
        looks_like=(
            "The regression targets sit in the hundreds or thousands while a freshly initialised network "
            "outputs values close to zero, so the first MSE is enormous (often 1e4 or more) and the first "
            "epochs are spent just moving the outputs to the right scale."
        ),
        why_it_hurts=(
            "The large gap between outputs near zero and far-away targets produces very large gradients that "
            "destabilise training, and the last layer has to grow large weights or biases before any real "
            "learning starts. When there are several targets, the ones on the biggest scale dominate the "
            "loss."
        ),
        how_to_fix=(
            "Standardise each target with the training split's mean and standard deviation (or log-transform "
            "positive, heavy-tailed targets), train on the scaled values, and invert the transform on the "
            "predictions. Alternatively set the bias of the final `nn.Linear` to the target mean at "
            "initialisation. Report metrics in the original units after undoing the scaling."
        ),
    ),
    Cause(
        id="nonfinite_inputs",
        title="NaN or Inf in the data",
        category="data",
        evidence="R",
        kind="bug",
        kind_reason="NaN or Inf in the data is wrong whatever the curves show, and poisons every step that meets it",
        looks_like=(
            "Some input or target tensors contain NaN or Inf values. The loss turns NaN on the first step "
            "that sees one, often at an apparently random point in an epoch, and stays NaN from then on."
        ),
        why_it_hurts=(
            "A single non-finite value spreads through every arithmetic operation it touches, so the loss "
            "and the gradients become NaN and the optimiser writes NaN into the weights, which ruins the "
            "model for good."
        ),
        how_to_fix=(
            "Check inputs and targets with `torch.isfinite(x).all()` before training and track down the rows "
            "responsible. Impute or drop missing values, and guard preprocessing against division by zero "
            "and the log of zero or negative numbers (add a small epsilon or clamp first). "
            "`torch.nan_to_num` is only a stopgap; fixing the source of the bad values is the real cure."
        ),
    ),
    Cause(
        id="constant_features",
        title="Constant input features",
        category="data",
        evidence="R",
        kind="risk",
        kind_reason="a constant column (a zero border pixel) carries no information but harms nothing by itself",
        looks_like=(
            "One or more input features have the same value in every sample, so their standard deviation is "
            "zero; after standardisation those columns turn into NaN or Inf."
        ),
        why_it_hurts=(
            "Dividing by a zero standard deviation produces NaN or Inf that then spreads through the "
            "network. Even without normalisation, a constant column carries no information and only adds "
            "parameters."
        ),
        how_to_fix=(
            "Drop zero-variance features before training, for example with "
            "`sklearn.feature_selection.VarianceThreshold`. If a column must stay, add an epsilon when "
            "normalising: `(x - mean) / (std + 1e-8)`. Compute these statistics on the training split, since "
            "a feature can be constant there even if it varies elsewhere."
        ),
    ),
    Cause(
        id="data_not_shuffled",
        title="Data not shuffled",
        category="data",
        evidence="R+C",
        kind="bug",
        kind_reason="batches that each hold one class are a feeding bug, whatever the loss shows",
        looks_like=(
            "Most batches hold only one or two classes because the data is stored sorted by label. The "
            "training loss draws a saw-tooth that repeats every epoch: it falls while one class lasts, then "
            "jumps when the next class begins."
        ),
        why_it_hurts=(
            "Gradient descent assumes each batch is a rough sample of the whole data distribution. With "
            "sorted data the model chases whichever class it is currently seeing and forgets the others, so "
            "it never settles on weights that work for all classes."
        ),
        how_to_fix=(
            "Pass `shuffle=True` to the training `DataLoader`, or with `DistributedSampler` call "
            "`sampler.set_epoch(epoch)` at the start of every epoch. If you build batches by hand, draw a "
            "new `torch.randperm` each epoch and index inputs and labels with the same permutation. The "
            "validation loader does not need shuffling."
        ),
    ),
    Cause(
        id="class_imbalance",
        title="Class imbalance",
        category="data",
        evidence="R",
        kind="risk",
        kind_reason="skewed labels are often the task itself (token ids, rare events); harm shows in the curves",
        as_consequence="the label histogram looks skewed",
        looks_like=(
            "The label histogram is dominated by one class. Accuracy quickly reaches that class's share and "
            "stops there, because the model predicts the majority class almost everywhere while recall on "
            "the rare classes stays near zero."
        ),
        why_it_hurts=(
            "The average loss is dominated by the common class, so always predicting it is an easy and "
            "fairly good solution; the rare classes contribute too little gradient to be learned."
        ),
        how_to_fix=(
            "Weight the loss by inverse class frequency, e.g. `nn.CrossEntropyLoss(weight=class_weights)`, "
            "or `nn.BCEWithLogitsLoss(pos_weight=...)` for binary tasks. Or oversample rare classes with "
            "`torch.utils.data.WeightedRandomSampler` (passed as `sampler=`, which cannot be combined with "
            "`shuffle=True`). Judge the model with per-class recall, balanced accuracy, F1 or PR-AUC instead "
            "of plain accuracy, and collect more examples of the rare classes if you can."
        ),
    ),
    Cause(
        id="repeated_batch",
        title="Same batch fed repeatedly",
        category="data",
        evidence="R",
        kind="bug",
        kind_reason=(
            "one batch fed again and again while the DataLoader has more is a loader bug (full-batch "
            "training is not checked; with no DataLoader to tell, the finding is a risk)"
        ),
        looks_like=(
            "Consecutive batches are identical, or cycle through only a handful of batches. The training "
            "loss drops quickly towards zero while the validation loss hardly moves."
        ),
        why_it_hurts=(
            "The model only ever sees a tiny slice of the data, so it memorises that slice instead of "
            "learning from the dataset. This is almost always a loader bug, such as calling "
            "`next(iter(loader))` inside the training loop, which with `shuffle=False` returns the first "
            "batch every time."
        ),
        how_to_fix=(
            "Iterate with `for x, y in loader:` once per epoch instead of recreating the iterator on every "
            "step. Check that a custom `Dataset.__getitem__` really uses the index it is given and does not "
            "return cached or fixed data. Log a few sample ids or a hash of each batch over several steps to "
            "confirm they change."
        ),
    ),
    Cause(
        id="labels_unrelated",
        title="Labels unrelated to inputs",
        category="data",
        evidence="R+C",
        kind="outcome",
        kind_reason="a validation loss that never improves while training falls is harm seen in the curves",
        as_consequence="the validation loss never improved",
        looks_like=(
            "The training loss stays near chance level, or falls only slowly as the model memorises "
            "individual samples, while validation loss and accuracy stay at chance (about 1/C accuracy for C "
            "classes)."
        ),
        why_it_hurts=(
            "If the labels are very noisy, were shuffled separately from the inputs, or were misaligned by a "
            "pipeline bug, there is little or no signal to learn. The only way left to reduce training loss "
            "is to memorise each sample, which does not carry over to new data."
        ),
        how_to_fix=(
            "Look at a handful of samples next to their labels and confirm they match. Make sure every "
            "shuffle, filter or sort applies the same index to inputs and labels (keeping them together in "
            "one `TensorDataset` or one `Dataset.__getitem__` helps), and that the class-to-index mapping is "
            "the same for training and validation. If the labels are genuinely noisy, clean or relabel a "
            "subset; a run on deliberately shuffled labels that does as well as the real one confirms the "
            "pairing is broken."
        ),
    ),
    Cause(
        id="train_val_preprocessing_mismatch",
        title="Training and validation preprocessed differently",
        category="data",
        evidence="R",
        kind="bug",
        kind_reason="validation inputs on another scale make every validation number wrong",
        looks_like=(
            "Inputs seen in evaluation forward passes have a clearly different mean, spread or range from "
            "the training inputs (for example 0..255 against 0..1, or raw against normalised). Validation "
            "loss is much worse than training loss from the first epoch on."
        ),
        why_it_hurts=(
            "The model learned to expect inputs with the training statistics; validation inputs that are "
            "shifted or rescaled land where it has never been trained, so its predictions there are "
            "unreliable even if it learned well."
        ),
        how_to_fix=(
            "Build the training and evaluation transforms from shared code that differs only in augmentation "
            "(random crops and flips for training only), with the same `transforms.Normalize` values. "
            "Compute normalisation statistics on the training split once and reuse them for validation and "
            "test rather than refitting them per split. When fine-tuning a pretrained torchvision model, use "
            "the preprocessing of its weights, e.g. `ResNet50_Weights.DEFAULT.transforms()`."
        ),
    ),
    Cause(
        id="dataset_too_small",
        title="Dataset too small",
        category="data",
        evidence="R+C",
        kind="outcome",
        kind_reason="decided only on early overfitting (validation 10% above its best): harm seen in the curves",
        as_consequence="it overfits early",
        looks_like=(
            "There are very few training samples compared with the number of parameters. The training loss "
            "goes close to zero within a few epochs, while the validation loss reaches its best early and "
            "then climbs."
        ),
        why_it_hurts=(
            "With far more parameters than examples, the network can store every training sample, noise "
            "included, instead of learning patterns that hold for new data."
        ),
        how_to_fix=(
            "Collect more data if possible, and stretch what you have with augmentation (e.g. "
            "`torchvision.transforms.RandomResizedCrop`, `RandomHorizontalFlip`). Fine-tune a pretrained "
            "model instead of training from scratch, or use a smaller network. Add dropout and weight decay, "
            "and stop early on the validation loss."
        ),
    ),
    Cause(
        id="dataset_suspect",
        title="Suspicious data or split",
        category="data",
        evidence="C",
        kind="outcome",
        kind_reason="a training loss flat while validation falls is harm seen in the curves",
        looks_like=(
            "The training loss stays flat while the validation loss keeps going down, the reverse of the "
            "normal picture."
        ),
        why_it_hurts=(
            "A model that is not improving on its own training data cannot genuinely keep improving on "
            "held-out data, so the pattern points at the data or the bookkeeping: splits that overlap or are "
            "swapped, a tiny or much easier validation set, corrupted training labels, or curves logged "
            "under the wrong names."
        ),
        how_to_fix=(
            "Confirm which metric name is which and that the training and validation loaders read the "
            "intended splits. Look for duplicates or leakage between the splits and compare their sizes and "
            "label distributions. Dropout and augmentation, which are only active in training, can "
            "legitimately keep the training loss higher, but they do not explain a training loss that never "
            "moves."
        ),
    ),
    Cause(
        id="final_layer_activation",
        title="Wrong activation on the output layer",
        category="model",
        evidence="R",
        kind="bug",
        kind_reason="an output activation that cannot reach the targets makes part of them unlearnable",
        looks_like=(
            "The last module before the loss is a ReLU, sigmoid or tanh whose output range cannot cover the "
            "targets, for instance a ReLU in front of regression targets that can be negative. Predictions "
            "pile up at zero or at the activation's limits and the loss levels off."
        ),
        why_it_hurts=(
            "The network simply cannot produce part of the required values, and where the activation is flat "
            "(ReLU below zero, sigmoid and tanh near their limits) the gradient is close to zero, so those "
            "errors are never corrected."
        ),
        how_to_fix=(
            "For regression, end with a plain `nn.Linear` and no activation, and normalise the targets "
            "instead. For classification, output raw logits and let `nn.CrossEntropyLoss` or "
            "`nn.BCEWithLogitsLoss` apply softmax or sigmoid internally; call `torch.softmax` or "
            "`torch.sigmoid` only when reporting predictions. Keep a bounded output only when the targets "
            "really live inside that range."
        ),
    ),
    Cause(
        id="bad_weight_init",
        title="Bad weight initialisation",
        category="model",
        evidence="R",
        kind="risk",
        kind_reason="an unusual scale is a smell a run may train through (constant weights that never move: the rule marks a bug)",
        looks_like=(
            "Weights start at zero, at one constant, with identical rows, or with a spread far from what He, "
            "LeCun or Xavier initialisation would give. The loss barely moves from its first value, or "
            "activations and gradients blow up or fade away within the first steps."
        ),
        why_it_hurts=(
            "Units with identical weights receive identical gradients, so they stay copies of each other and "
            "a layer behaves like a single unit. Weights that are too large or too small make the signal "
            "grow or shrink at every layer, saturating activations or starving the early layers of gradient."
        ),
        how_to_fix=(
            "Keep PyTorch's default initialisation of `nn.Linear` and `nn.Conv2d`, or apply an explicit "
            "scheme with `model.apply(init_fn)`: `torch.nn.init.kaiming_normal_(w, nonlinearity='relu')` for "
            "ReLU networks, `torch.nn.init.xavier_uniform_` for tanh or sigmoid layers, and "
            "`torch.nn.init.zeros_` for biases. Never set all weights to zero or to one constant, and check "
            "that custom init code does not overwrite the whole model with the same values."
        ),
    ),
    Cause(
        id="network_too_deep",
        title="Network too deep",
        category="model",
        evidence="R",
        kind="risk",
        kind_reason="depth is a design choice; the rule marks harm when the loss is stuck, else it is advice",
        looks_like=(
            "A long plain stack of layers, without residual connections or normalisation, barely trains "
            "while a shallower version of it learns. Gradient norms shrink layer after layer towards the "
            "input."
        ),
        why_it_hurts=(
            "Backpropagation multiplies the signal by each layer's local derivative, so across many plain "
            "layers gradients tend to vanish or explode and the early layers get almost no useful update. "
            "Extra depth also makes the optimisation harder without buying anything until the basics work."
        ),
        how_to_fix=(
            "Start from a shallow network of about 3 to 8 layers, get it training, and add depth only while "
            "it measurably helps. If you need depth, use residual connections (`x + block(x)`) together with "
            "normalisation layers (`nn.BatchNorm2d`, `nn.LayerNorm`) and He initialisation, as in "
            "ResNet-style blocks."
        ),
    ),
    Cause(
        id="insufficient_capacity",
        title="Model too small",
        category="model",
        evidence="R+C",
        kind="outcome",
        kind_reason="decided only on an underfitting training loss: harm seen in the curves",
        as_consequence="the model underfits",
        looks_like=(
            "Hidden layers are narrow compared with the number of inputs or classes, and the training loss "
            "flattens early at a high value. Training and validation loss stay close together, and both are "
            "poor."
        ),
        why_it_hurts=(
            "A network with too few units or layers cannot represent the function the task needs, so it "
            "underfits: training longer or tuning the optimiser does not bring the loss down."
        ),
        how_to_fix=(
            "Widen the hidden layers (256 to 1024 units is a reasonable start for an MLP, and several times "
            "the number of classes at the very least) or add a few layers. Confirm that the larger model can "
            "overfit a small subset of the training data; if it cannot, look for a bug rather than adding "
            "more size. Also ease off any strong regularisation."
        ),
    ),
    Cause(
        id="dead_relu",
        title="Dead ReLU units",
        category="model",
        evidence="R",
        kind="risk",
        kind_reason="dead units cost capacity a run may not need; the loss curves say whether it hurt",
        as_consequence="the ReLUs died",
        looks_like=(
            "A large share of ReLU units output zero for every input in the sampled batches, in some layers "
            "almost all of them. The training loss stops changing from one epoch to the next."
        ),
        why_it_hurts=(
            "ReLU has zero gradient for negative inputs, so a unit whose pre-activation is negative for "
            "every input receives no gradient and its incoming weights never change again. A too-high "
            "learning rate or a large negative bias often pushes units into this state."
        ),
        how_to_fix=(
            "Lower the learning rate, and use He initialisation (`torch.nn.init.kaiming_normal_(w, "
            "nonlinearity='relu')`) with zero biases. Switch to `nn.LeakyReLU(0.01)`, `nn.ELU` or `nn.GELU`, "
            "which keep a non-zero gradient for negative inputs. A normalisation layer (`nn.BatchNorm1d`, "
            "`nn.LayerNorm`) before the activation also keeps pre-activations centred."
        ),
    ),
    Cause(
        id="saturated_activations",
        title="Saturated sigmoid or tanh units",
        category="model",
        evidence="R",
        kind="risk",
        kind_reason="saturated units (a pooler's tanh) can be by design; the loss curves say whether it hurt",
        as_consequence="the activations saturated",
        looks_like=(
            "Many sigmoid or tanh pre-activations have a large magnitude (beyond about 3 to 5), so the "
            "outputs sit at 0 and 1 or at -1 and +1. The loss stalls and the gradients of earlier layers "
            "become tiny."
        ),
        why_it_hurts=(
            "The derivatives of sigmoid and tanh are nearly zero near their limits, so saturated units pass "
            "almost no gradient backwards and the layers before them stop learning."
        ),
        how_to_fix=(
            "Normalise the inputs and initialise tanh or sigmoid layers with `torch.nn.init.xavier_uniform_` "
            "(with `gain=torch.nn.init.calculate_gain('tanh')` for tanh). Prefer ReLU-family activations in "
            "hidden layers, or put `nn.BatchNorm1d` or `nn.LayerNorm` before the saturating ones. If "
            "saturation only appears after training starts, lower the learning rate."
        ),
    ),
    Cause(
        id="frozen_parameters",
        title="Frozen parameters",
        category="model",
        evidence="R",
        kind="bug",
        kind_reason="a parameter that requires gradients but no optimizer updates can never learn",
        looks_like=(
            "Some parameters never change during training: their update is exactly zero on every step, "
            "because `requires_grad` is False or because they were never handed to the optimizer."
        ),
        why_it_hurts=(
            "Layers that do not learn keep their random initial values, so the rest of the network has to "
            "work around them and the model's effective capacity shrinks; if a whole head is frozen, the "
            "task cannot be learned at all."
        ),
        how_to_fix=(
            "List `[n for n, p in model.named_parameters() if not p.requires_grad]` and undo unintended "
            "`requires_grad_(False)` calls, for example left over from fine-tuning code. Create the "
            "optimizer after the model is fully built, from `model.parameters()`, and register later "
            "additions with `optimizer.add_param_group`. Keep sub-layers in `nn.ModuleList` or "
            "`nn.ModuleDict` rather than plain Python lists, and look for `.detach()` or `torch.no_grad()` "
            "in the forward pass, which cut gradients."
        ),
    ),
    Cause(
        id="eval_mode_not_set",
        title="Evaluation run in training mode",
        category="model",
        evidence="R",
        kind="bug",
        kind_reason="validation computed with dropout and batch statistics on is wrong whatever it shows",
        looks_like=(
            "Validation or test forward passes run without gradients while dropout and batch-norm modules "
            "are still in training mode. Validation metrics are noisy, change with the evaluation batch "
            "size, or are worse than the training results suggest."
        ),
        why_it_hurts=(
            "In training mode dropout keeps zeroing random activations and batch norm normalises with the "
            "current batch's statistics while updating its running averages with validation data. Evaluation "
            "results become random and biased, and the stored statistics get contaminated."
        ),
        how_to_fix=(
            "Call `model.eval()` before every evaluation loop and `model.train()` before training resumes. "
            "Also wrap evaluation in `torch.no_grad()` or `torch.inference_mode()` to save memory, but note "
            "that these do not switch the module mode by themselves."
        ),
    ),
    Cause(
        id="batchnorm_small_batch",
        title="Batch normalisation with tiny batches",
        category="model",
        evidence="R",
        kind="risk",
        kind_reason="noisy batch statistics are a smell; the curves say whether they hurt",
        looks_like=(
            "The model uses batch-norm layers while training batches hold only 1 to 4 samples. Training loss "
            "is very noisy, results in `model.eval()` are much worse than during training, or outputs turn "
            "NaN."
        ),
        why_it_hurts=(
            "With a handful of samples the batch mean and variance are very noisy estimates, so "
            "normalisation injects heavy noise and the running statistics used at evaluation are unreliable. "
            "With a single value per channel PyTorch refuses to run batch norm in training mode at all."
        ),
        how_to_fix=(
            "Increase the batch size if memory allows; gradient accumulation does not help, because the "
            "statistics are still computed per small batch. Otherwise replace `nn.BatchNorm2d` with "
            "`nn.GroupNorm` or `nn.LayerNorm`, which do not depend on the batch. When fine-tuning a "
            "pretrained model with small batches, keep its batch-norm layers in eval mode so their stored "
            "statistics are used and not updated."
        ),
    ),
    Cause(
        id="no_regularization",
        title="No regularisation",
        category="model",
        evidence="R+C",
        kind="risk",
        kind_reason="its harm is the overfitting, which is reported as such; no regularisation is the set-up behind it",
        looks_like=(
            "The optimizer has `weight_decay=0`, the model has no dropout and the data is not augmented, "
            "while the curves show overfitting: training loss keeps falling as validation loss turns upward."
        ),
        why_it_hurts=(
            "Without any constraint the network is free to fit noise and quirks of the training samples, so "
            "it generalises worse than it could."
        ),
        how_to_fix=(
            "Add weight decay, e.g. `torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2)` or SGD with "
            "`weight_decay=5e-4`, and `nn.Dropout` with p between 0.1 and 0.5 before large linear layers. "
            "Use data augmentation and early stopping on the validation loss. Note that `p` in `nn.Dropout` "
            "is the probability of dropping a unit, not of keeping it."
        ),
    ),
    Cause(
        id="too_much_regularization",
        title="Too much regularisation",
        category="model",
        evidence="R+C",
        kind="outcome",
        kind_reason="decided only when the training loss stalls high: harm seen in the curves",
        looks_like=(
            "Dropout rates are high, weight decay is large or augmentation is aggressive, and the training "
            "loss levels off at a high value, often above the validation loss."
        ),
        why_it_hurts=(
            "Strong regularisation limits what the model can fit; dropout, weight decay and heavy "
            "augmentation stack up and can make the model underfit even its training data."
        ),
        how_to_fix=(
            "Remove or weaken regularisation until the model can fit the training set, then add it back step "
            "by step while watching the validation loss. Dropout of 0.1 to 0.3 and AdamW weight decay of "
            "about 1e-4 to 1e-2 are typical starting points. Tone down augmentations that distort samples "
            "beyond recognition."
        ),
    ),
    Cause(
        id="missing_bias",
        title="Missing bias terms",
        category="model",
        evidence="R",
        kind="risk",
        kind_reason="layers without bias are often deliberate and train fine",
        looks_like=(
            "Linear or convolution layers are built with `bias=False` even though no normalisation layer "
            "follows them, so every unit's output is forced through the origin."
        ),
        why_it_hurts=(
            "Without a bias a unit cannot shift its output, so the layer can only represent functions that "
            "pass through zero. Fitting data with an offset then needs awkward detours, and training is "
            "slower or stalls."
        ),
        how_to_fix=(
            "Keep the default `bias=True` on `nn.Linear` and `nn.Conv2d`, above all on the output layer. "
            "Leaving the bias out is only sensible when a normalisation layer with its own learned shift, "
            "such as `nn.BatchNorm2d` or `nn.LayerNorm`, comes right after, because it cancels the bias "
            "anyway."
        ),
    ),
    Cause(
        id="loss_input_mismatch",
        title="Wrong kind of input to the loss",
        category="loss",
        evidence="R",
        kind="bug",
        kind_reason="softmax into CrossEntropyLoss (or logits into NLLLoss) is wrong whatever the curves show",
        looks_like=(
            "The loss receives the wrong kind of values: rows that already sum to 1 going into "
            "`nn.CrossEntropyLoss`, raw logits going into `nn.NLLLoss` (sometimes giving a negative loss), "
            "or logits going into `nn.BCELoss`, which raises an error once a value falls outside 0..1."
        ),
        why_it_hurts=(
            "`nn.CrossEntropyLoss` applies log-softmax itself, so probabilities fed to it are squashed "
            "twice: the loss can barely fall and gradients are weak. `nn.NLLLoss` only picks and negates the "
            "input at the target index, so with raw logits the objective has no lower bound and means "
            "nothing."
        ),
        how_to_fix=(
            "Return raw logits from the model and pair them with `nn.CrossEntropyLoss` for single-label "
            "classification or `nn.BCEWithLogitsLoss` for binary and multi-label tasks. Use `nn.NLLLoss` "
            "only after `torch.log_softmax(logits, dim=1)` and `nn.BCELoss` only after `torch.sigmoid`, "
            "though the logit-based losses are numerically safer. Apply softmax or sigmoid only for "
            "reporting, outside the loss."
        ),
    ),
    Cause(
        id="initial_loss_mismatch",
        title="Unexpected initial loss",
        category="loss",
        evidence="R+C",
        kind="risk",
        kind_reason="a first loss far from ln C is a set-up smell that training often recovers from",
        as_consequence="the first loss was off",
        looks_like=(
            "The first loss value is far from what an untrained model should give, e.g. well above ln C "
            "(about 2.30 for 10 balanced classes) with cross-entropy, or already close to zero."
        ),
        why_it_hurts=(
            "A freshly initialised classifier should spread its probability roughly evenly across classes. A "
            "very different starting loss points at overconfident initial outputs (badly scaled inputs or "
            "weights), a wrong loss reduction or scaling, a wrong number of classes, or labels leaking into "
            "the inputs."
        ),
        how_to_fix=(
            "Compute the loss on the first batch before any update and compare it with ln C, or with the "
            "entropy of the label distribution when classes are imbalanced. If it is much higher, check "
            "input normalisation and the scale of the last layer (small weights, zero bias, or a bias set to "
            "the log class frequencies). If it is much lower, look for label leakage or a loss scaled by "
            "mistake, and check that the output layer has exactly C units and labels run from 0 to C-1."
        ),
    ),
    Cause(
        id="nonfinite_loss",
        title="Loss became NaN or Inf",
        category="loss",
        evidence="R+C",
        kind="outcome",
        kind_reason="a NaN or Inf loss is the run broken, seen in its curve",
        as_consequence="the loss turned NaN",
        looks_like=(
            "The loss curve ends in NaN or Inf at some step, often after a sudden spike, and every later "
            "value is NaN as well."
        ),
        why_it_hurts=(
            "Once an overflow, a division by zero or a log of zero yields a non-finite value, it flows into "
            "the gradients and then into the weights, so every following step is broken too. Typical sources "
            "are a learning rate that is too high, exploding gradients, bad values in the data, and "
            "hand-written softmax or log without numerical safeguards."
        ),
        how_to_fix=(
            "Cut the learning rate, above all when NaN appears within the first hundred steps, and clip "
            "gradients with `torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)`. Use stable built-ins "
            "such as `nn.CrossEntropyLoss`, `nn.BCEWithLogitsLoss`, `torch.log_softmax` and "
            "`torch.logsumexp` instead of `torch.log(torch.softmax(x))`, and add an epsilon to divisions and "
            "logs. Check the data with `torch.isfinite`, run a few steps under "
            "`torch.autograd.set_detect_anomaly(True)` to find the first operation that produces NaN, and "
            "with float16 autocast use a gradient scaler or switch to bfloat16."
        ),
    ),
    Cause(
        id="loss_metric_disagreement",
        title="Loss and metric disagree",
        category="loss",
        evidence="C",
        kind="outcome",
        kind_reason="a task metric that does not improve is harm to what the run is for",
        as_consequence="the metric did not follow the loss",
        looks_like=(
            "The loss keeps improving while accuracy or the task metric stays flat or gets worse, or on "
            "validation the two move in opposite directions."
        ),
        why_it_hurts=(
            "The loss is only a proxy: it can fall because the model grows more confident on examples it "
            "already gets right while the decisions the metric counts stay the same, and validation loss can "
            "rise through overconfidence while accuracy still improves. A disagreement can also mean a bug "
            "in how the metric is computed."
        ),
        how_to_fix=(
            "Check the metric code on a few hand-verified examples: argmax over the class dimension, the "
            "same label encoding as the loss, and a 0.5 threshold applied to probabilities rather than to "
            "logits. Make sure the loss matches the goal, e.g. class weights for imbalanced data, and choose "
            "checkpoints by the metric you care about. Track several metrics (accuracy, per-class recall, "
            "F1) instead of trusting the loss alone."
        ),
    ),
    Cause(
        id="learning_rate_too_high",
        title="Learning rate too high",
        category="optimisation",
        evidence="R+C",
        kind="risk",
        kind_reason=(
            "large update ratios alone are a smell (LBFGS steps); when the loss blew up, diverged or "
            "swung, those outcome findings carry the harm"
        ),
        as_consequence="the steps are too large",
        looks_like=(
            "The loss falls fast for a short while, then bounces around, climbs back up or explodes to NaN. "
            "Per-layer update-to-weight ratios are far above 1e-3 and gradient norms spike."
        ),
        why_it_hurts=(
            "Steps that are too large overshoot the minimum along steep directions, so an update can make "
            "the loss worse instead of better. Very large updates can also kill ReLU units or overflow the "
            "softmax."
        ),
        how_to_fix=(
            "Divide the learning rate by 10 and retry; AdamW around 1e-3 to 3e-4 and SGD around 0.1 to 0.01 "
            "are common starting points. A learning-rate range test (raise the rate step by step until the "
            "loss blows up, then use about a tenth of that value) finds a good setting quickly. For large "
            "models or batches, add a short warm-up, e.g. `torch.optim.lr_scheduler.LinearLR` over the first "
            "few hundred steps."
        ),
    ),
    Cause(
        id="learning_rate_too_low",
        title="Learning rate too low",
        category="optimisation",
        evidence="R+C",
        kind="outcome",
        kind_reason="read mainly as slow, steady progress that ended far above where it could: harm seen in the curves",
        as_consequence="progress is slow",
        looks_like=(
            "The loss falls slowly and almost in a straight line, without the usual quick early drop, and is "
            "still far from good when training ends. Update-to-weight ratios are far below 1e-3."
        ),
        why_it_hurts=(
            "Tiny steps make too little progress per update, so the training budget runs out long before "
            "convergence, and the model can stall in flat regions it would otherwise cross."
        ),
        how_to_fix=(
            "Multiply the learning rate by 3 to 10 and compare short runs; a learning-rate range test shows "
            "where the loss starts to fall fastest. Check that a scheduler does not start from a tiny value "
            "and that a warm-up is not too long. With SGD, use momentum (`torch.optim.SGD(params, lr=0.1, "
            "momentum=0.9)`), or try Adam or AdamW."
        ),
    ),
    Cause(
        id="lr_decay_too_fast",
        title="Learning rate decays too fast",
        category="optimisation",
        evidence="C",
        kind="outcome",
        kind_reason="decided only when progress stopped as the learning rate fell: harm seen in the curves",
        looks_like=(
            "The logged learning rate drops by orders of magnitude early in training, and the loss stops "
            "improving at that same moment while it is still high."
        ),
        why_it_hurts=(
            "Once the learning rate is tiny the updates barely change the weights, so training effectively "
            "stops before the model has learned. Per-step exponential decay compounds quickly: a factor of "
            "0.9995 per step shrinks the rate about 150-fold over 10,000 steps."
        ),
        how_to_fix=(
            "Decay later and more gently, e.g. `StepLR` with steps late in training or `CosineAnnealingLR` "
            "with `T_max` equal to the total number of scheduler steps. Check whether `scheduler.step()` is "
            "called once per epoch or once per batch, and that this matches how the schedule was configured. "
            "`ReduceLROnPlateau` with a sensible `patience` lowers the rate only when progress really "
            "stalls."
        ),
    ),
    Cause(
        id="batch_size_too_large",
        title="Batch size too large",
        category="optimisation",
        evidence="R+C",
        kind="risk",
        kind_reason="few updates per epoch is a set-up choice; what it cost shows as not_converged or plateau",
        as_consequence="too few updates were made",
        looks_like=(
            "Each batch is a large share of the dataset, so an epoch contains only a few optimizer steps. "
            "The training loss falls slowly per epoch and the final validation result is worse than with "
            "smaller batches."
        ),
        why_it_hurts=(
            "Large batches mean fewer updates per epoch and less gradient noise, which slows progress and "
            "tends to lead the model into sharp minima that generalise less well."
        ),
        how_to_fix=(
            "Try smaller batches, such as 32 to 256, or even 8 to 16 on small datasets, so each epoch gives "
            "many updates. If you must keep a large batch, scale the learning rate up roughly in proportion "
            "to the batch size, add a warm-up, and train for more epochs."
        ),
    ),
    Cause(
        id="gradient_clipping_masks_lr",
        title="Gradient clipping hides a high learning rate",
        category="optimisation",
        evidence="R",
        kind="risk",
        kind_reason="clipping on every step hides the learning rate but a run can still train well under it",
        as_consequence="the gradient clip bites on most steps",
        looks_like=(
            "The gradient norm is above the clipping threshold on most steps, so clipping is active nearly "
            "all the time. Training is slow, and changing the learning rate has little or unpredictable "
            "effect."
        ),
        why_it_hurts=(
            "When the clip bites on every step, the threshold rather than the gradient decides how big each "
            "step is. That hides the real problem, usually a learning rate that is too high or outliers in "
            "the data producing huge gradients."
        ),
        how_to_fix=(
            "Log the value returned by `torch.nn.utils.clip_grad_norm_`, which is the norm before clipping, "
            "and see how often it exceeds `max_norm`. Turn clipping off, find the highest learning rate that "
            "does not make the loss explode, and use about a tenth of it. Then reintroduce clipping only as "
            "a safety net for rare spikes, and look for outliers or bad labels if it still fires often."
        ),
    ),
    Cause(
        id="exploding_gradients",
        title="Exploding gradients",
        category="optimisation",
        evidence="R+C",
        kind="outcome",
        kind_reason="gradient norms growing 100x or turning NaN is training breaking, seen in a logged curve",
        as_consequence="the gradients exploded",
        looks_like=(
            "Gradient norms grow by orders of magnitude over training or spike suddenly. The loss jumps and "
            "often turns NaN shortly afterwards."
        ),
        why_it_hurts=(
            "Gradients passed back through many layers or time steps with factors above one grow "
            "exponentially, producing huge updates that throw the weights far from any good solution."
        ),
        how_to_fix=(
            "Clip with `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)` between "
            "`loss.backward()` and `optimizer.step()`, and lower the learning rate. Use proper "
            "initialisation, normalisation layers and residual connections, and prefer `nn.LSTM` or `nn.GRU` "
            "over a plain `nn.RNN`. With a gradient scaler for mixed precision, call "
            "`scaler.unscale_(optimizer)` before clipping."
        ),
    ),
    Cause(
        id="vanishing_gradients",
        title="Vanishing gradients",
        category="optimisation",
        evidence="R",
        kind="risk",
        kind_reason="small early-layer gradients are a smell; the loss curves say whether the model still learned",
        as_consequence="the gradients vanished",
        looks_like=(
            "Gradient norms in the first layers are orders of magnitude smaller than in the last ones. "
            "Early-layer weights barely change and the loss falls very slowly or stalls."
        ),
        why_it_hurts=(
            "Backpropagation multiplies by each layer's local derivative; with saturating activations, small "
            "weights or many layers these factors are below one, so the signal fades before it reaches the "
            "early layers and they stop learning."
        ),
        how_to_fix=(
            "Use ReLU-family activations with He initialisation (`torch.nn.init.kaiming_normal_`) instead of "
            "sigmoid or tanh in hidden layers. Add normalisation (`nn.BatchNorm2d`, `nn.LayerNorm`) and "
            "residual connections, and reduce depth if the model is a deep plain stack. For sequences, use "
            "`nn.LSTM`, `nn.GRU` or attention rather than a plain `nn.RNN`."
        ),
    ),
    Cause(
        id="update_ratio_abnormal",
        title="Abnormal update-to-weight ratio",
        category="optimisation",
        evidence="R",
        kind="risk",
        kind_reason="one layer's odd update size is a smell; the loss curves say whether it hurt",
        as_consequence="some layers' update sizes are off",
        looks_like=(
            "For some layers the size of each update relative to the size of the weights is far from about "
            "1e-3: around 1e-1 or more means the layer is largely rewritten on every step, around 1e-5 or "
            "less means it hardly moves."
        ),
        why_it_hurts=(
            "The ratio measures how fast each layer is learning. Far above the usual range the layer is "
            "unstable; far below it the layer is effectively stuck. Usual causes are the learning rate, the "
            "scale of the initial weights, or a layer-specific issue such as saturation."
        ),
        how_to_fix=(
            "Measure it per layer as the norm of the change in a parameter across `optimizer.step()` divided "
            "by the parameter's norm (keep a `param.detach().clone()` from before the step). If it is high "
            "in all layers, lower the learning rate, and if it is low in all of them, raise it. If only some "
            "layers are off, check their initialisation and activations, or give them their own learning "
            "rate through optimizer parameter groups."
        ),
    ),
    Cause(
        id="gradients_not_zeroed",
        title="Gradients not zeroed",
        category="optimisation",
        evidence="R+C",
        kind="bug",
        kind_reason="gradients accumulating across steps is a definite bug",
        looks_like=(
            "Parameters already hold a gradient before `loss.backward()` runs, and the gradient norm grows "
            "steadily from step to step. The loss may fall at first, then becomes unstable or diverges."
        ),
        why_it_hurts=(
            "PyTorch adds new gradients into `.grad` instead of replacing them, so without a reset each step "
            "uses the sum of all past gradients: updates keep growing and point in stale directions."
        ),
        how_to_fix=(
            "Call `optimizer.zero_grad()` once per step, before `loss.backward()`; its default "
            "`set_to_none=True` in PyTorch 2.x is fine. If you accumulate gradients on purpose over k "
            "micro-batches, divide each loss by k and zero the gradients right after each "
            "`optimizer.step()`. With several optimizers or manual updates, make sure every parameter is "
            "reset, e.g. with `model.zero_grad()`."
        ),
    ),
    Cause(
        id="not_converged",
        title="Not converged",
        category="dynamics",
        evidence="C",
        kind="risk",
        kind_reason="a run still improving at its end has learned: training longer is advice, not a failure",
        as_consequence="the loss was still falling at the end",
        looks_like=(
            "At the last logged steps the loss is still falling clearly, with no sign of levelling off; the "
            "run simply stopped while it was still improving."
        ),
        why_it_hurts=(
            "The model had not yet reached what it could do, so the final metrics understate it. This is a "
            "training-budget problem, not a bug."
        ),
        how_to_fix=(
            "Train for more epochs or steps, resuming from the last checkpoint if you saved the model, "
            "optimizer and scheduler `state_dict()`s. If a learning-rate schedule ended too soon, stretch it "
            "over the longer budget. Use early stopping on the validation loss so that longer runs end on "
            "their own."
        ),
    ),
    Cause(
        id="overfitting",
        title="Overfitting",
        category="dynamics",
        evidence="C",
        kind="outcome",
        kind_reason="a validation loss rising away from its best is harm seen in the curves",
        as_consequence="the model overfits",
        looks_like=(
            "The training loss keeps falling while the validation loss levels off and then rises, so the gap "
            "between them widens epoch after epoch."
        ),
        why_it_hurts=(
            "The model is learning details specific to the training samples that do not hold for new data, "
            "so further training makes held-out results worse."
        ),
        how_to_fix=(
            "Keep the checkpoint with the best validation loss and stop once it has not improved for a few "
            "epochs. Add regularisation: weight decay (e.g. AdamW with `weight_decay=1e-2`), `nn.Dropout` "
            "and data augmentation, or use a smaller model. More training data is the most reliable cure."
        ),
    ),
    Cause(
        id="plateau",
        title="Plateau",
        category="dynamics",
        evidence="C",
        kind="outcome",
        kind_reason="a loss stuck well above a good loss is harm seen in the curves",
        as_consequence="the loss stalled",
        looks_like=("Training and validation loss both flatten well above a good value and stay flat for many epochs."),
        why_it_hurts=(
            "Learning has stalled: the step size may no longer suit this stage of training, the model may be "
            "too small or too heavily regularised, or the optimizer is stuck in a flat region."
        ),
        how_to_fix=(
            "Lower the learning rate by 10, or let `torch.optim.lr_scheduler.ReduceLROnPlateau` do it, and "
            "see whether the loss moves again; a smaller batch size can also help. If not, check capacity by "
            "trying to overfit a small subset, reduce regularisation, and look for dead or saturated units."
        ),
    ),
    Cause(
        id="diverging",
        title="Diverging",
        category="dynamics",
        evidence="C",
        kind="outcome",
        kind_reason="a loss climbing back up is harm seen in the curves",
        as_consequence="the loss diverged",
        looks_like=(
            "Training and validation loss both rise over time, often after an initial drop, and may end in NaN."
        ),
        why_it_hurts=(
            "The updates are making the model worse even on the data it trains on, which points at a "
            "learning rate that is too high, exploding or accumulating gradients, a faulty model design, or "
            "broken data."
        ),
        how_to_fix=(
            "Divide the learning rate by 10 and add gradient clipping with `torch.nn.utils.clip_grad_norm_`. "
            "Check that `optimizer.zero_grad()` is called every step and that the loss is being minimised, "
            "not maximised. Inspect a few batches for bad values or labels, and restart from the last good "
            "checkpoint."
        ),
    ),
    Cause(
        id="oscillating_loss",
        title="Oscillating loss",
        category="dynamics",
        evidence="C",
        kind="outcome",
        kind_reason="swings as large as the progress are harm seen in the curves",
        as_consequence="the loss swings",
        looks_like=(
            "The loss swings up and down by large amounts from step to step or epoch to epoch without a "
            "clear downward trend, even after smoothing."
        ),
        why_it_hurts=(
            "The optimizer keeps overshooting back and forth across a valley, usually because the learning "
            "rate is too high or the gradients are very noisy from tiny batches or unshuffled data."
        ),
        how_to_fix=(
            "Lower the learning rate by a factor of 3 to 10, or add a decaying schedule such as "
            "`CosineAnnealingLR`. Use a larger batch or momentum to smooth the gradient, and make sure the "
            "training `DataLoader` has `shuffle=True`. Some noise in per-batch loss is normal, so judge by "
            "epoch averages."
        ),
    ),
)

BY_ID: dict[str, Cause] = {c.id: c for c in CAUSES}


def get(cause_id: str) -> Cause:
    """The catalog entry for a cause id (KeyError for an unknown id)."""
    return BY_ID[cause_id]
