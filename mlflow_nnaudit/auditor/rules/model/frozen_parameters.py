"""`frozen_parameters`: parameters that never learn (no update, no gradient, or not the model's)."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class FrozenParameters(Rule):
    """Four definite bugs, from the recorder's facts, and a reading:

    - the optimizer was handed tensors the model is fed (`SGD([x_train])`), or a module ran
      forward passes while none of its parameters is in the optimizer: the model never learns;
    - no parameter of the optimizer learns: on every sampled step each one's gradient was None
      or zero and none changed (every parameter frozen with `requires_grad=False`, the error
      that follows silenced with `loss.requires_grad = True`);
    - some parameters of a hand-written model (no `nn.Module`), or at least half of a module's,
      never received a gradient: the module's output never reaches the loss, or the tensor the
      optimizer holds is not the one the loss uses (rebuilt, `torch.tensor(a.item(), requires_grad=True)`);
    - parameters that require gradients but are in no optimizer group (the optimizer was built
      before layers were added or replaced), or layers kept in a plain Python list whose
      parameters got a gradient (never registered: `model.parameters()` never had them);
    - frozen parameters (`requires_grad=False` when the model was attached), a quarter of the
      model's values or more, on a run that learned nothing (`helpers.learned_nothing`): medium
      confidence, the freezing may be on purpose. A quarter is a whole layer or table the rest
      must work through; a few frozen values cannot explain a run that learned nothing, and a
      frozen backbone on a run that learned is fine-tuning, not a fault.

    `failed` when nothing of the model learns, else `warning`; not reported: a few parameters without gradient (an
    unused pooler), frozen parameters the optimizer does not hold. A missing gradient is listed after
    `loss_input_mismatch`, `dead_relu`, `learning_rate_too_high`, `bad_weight_init`, `saturated_activations` or
    `vanishing_gradients` when found too (`GRADIENT_UPSTREAM`); the other readings never."""

    cause = "frozen_parameters"
    #: gradients all zero because the loss input is constant, units died or saturated to an exact 0, or a zero init
    #: (a zero matrix passes no gradient back); a parameter in no optimizer group is a bug of its own (a VAE's decoder)
    GRADIENT_UPSTREAM = ("loss_input_mismatch", "dead_relu", "learning_rate_too_high", "bad_weight_init")
    GRADIENT_UPSTREAM += ("saturated_activations", "vanishing_gradients")
    reads = (("model", "trainable_not_in_optimizer"), ("model", "unregistered_modules"), ("model", "outside_modules"))
    reads += (("learning", "optimizer"), ("learning", "model_outside_optimizer"), ("model", "class"))
    reads += (*helpers.FROZEN_READS, *helpers.MEAN_READS, *helpers.ZERO_RATE_READS)

    #: parameter names listed in the text at most
    NAMED = 5
    #: with an nn.Module, this share of the optimizer's tensors without any gradient is reported
    MODULE_NEVER_GRAD_SHARE = 0.5
    #: sampled steps needed before "never" means anything
    MIN_SAMPLES = 2
    #: frozen values that can explain a run that learned nothing: this share of the model's or more
    FROZEN_SHARE = 0.25

    def evaluate(self, view: RunView) -> Finding | None:
        opt, outside = view.fact("learning", "optimizer"), view.fact("learning", "model_outside_optimizer")
        opt, outside = (opt if isinstance(opt, dict) else {}), (outside if isinstance(outside, dict) else None)
        has_module = isinstance(view.fact("model", "class"), str)
        return (
            self._data_in_optimizer(opt, outside, has_module)
            or (None if helpers.learning_rate_zero(view) else self._nothing_learns(opt))  # a rate of 0: not frozen
            or self._never_grad(opt, has_module)
            or self._not_in_optimizer(view)
            or self._frozen_explains(view)
        )

    def _frozen_explains(self, view: RunView) -> Finding | None:
        fz = helpers.frozen_share(view)
        if fz is None or fz[0] < self.FROZEN_SHARE or not helpers.learned_nothing(view):
            return None
        what = f"{fz[2]} ({fz[1]:,} parameters, {fz[0]:.0%} of the model) never trained"
        return self.finding(
            confidence="medium",
            severity="failed",
            score=0.8,
            summary=f"{what}, and the model learned nothing",
            recommendation=f"{what}: `nn.Embedding.from_pretrained` freezes by default (pass `freeze=False`), or a "
            "loop set `requires_grad=False`; if the freezing is on purpose, the rest of the model cannot fit the task.",
            evidence=[Evidence("frozen_share", schema.DIAGNOSTICS_ARTIFACT, {"share": fz[0], "frozen": fz[1]})],
        )

    def _data_in_optimizer(self, opt: dict, outside: dict | None, has_module: bool) -> Finding | None:
        read = helpers.data_in_optimizer(opt, outside, has_module)
        if read is None:
            return None
        what, model, values = read
        return self.finding(
            confidence="high",
            severity="failed",
            score=1.0,
            summary=f"{what.capitalize()}: {model}never learns",
            recommendation=f"{what.capitalize()}, so {model}never changes. Build the optimizer from the model: "
            "`torch.optim.SGD(model.parameters(), lr=...)`, and leave `requires_grad` off the data tensors.",
            evidence=[Evidence("optimizer_parameters", schema.DIAGNOSTICS_ARTIFACT, values)],
        )

    def _nothing_learns(self, opt: dict) -> Finding | None:
        n = opt.get("parameters") or 0
        if n == 0 or (opt.get("sampled_steps") or 0) < self.MIN_SAMPLES:
            return None
        learning = opt.get("learning")
        never_grad = opt.get("never_grad") or 0
        if not (never_grad >= n or learning == 0):
            return None
        fix = helpers.nothing_learns_fix(opt, n)
        return self.finding(
            confidence="high",
            severity="failed",
            score=1.0,
            summary=f"No parameter learns: none of the optimizer's {n} parameter tensors gets a gradient or changes",
            recommendation=fix,
            follows=self.GRADIENT_UPSTREAM,
            evidence=[Evidence("parameters_never_learn", schema.DIAGNOSTICS_ARTIFACT, helpers.names_cut(opt))],
        )

    def _never_grad(self, opt: dict, has_module: bool) -> Finding | None:
        n = opt.get("parameters") or 0
        never = opt.get("never_grad") or 0
        if not never or n == 0 or (opt.get("sampled_steps") or 0) < self.MIN_SAMPLES:
            return None
        if has_module and never / n < self.MODULE_NEVER_GRAD_SHARE:
            return None
        names = opt.get("never_grad_names") or []
        listed = ", ".join(names[: self.NAMED]) + (" ..." if never > self.NAMED else "")
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.9,
            summary=f"{never} of the optimizer's {n} parameter tensors never received a gradient: {listed}",
            follows=self.GRADIENT_UPSTREAM,
            recommendation=f"{listed} never received a gradient on {opt.get('sampled_steps')} sampled steps, so "
            "they never learn: their module's output never reaches the loss (an encoder's state not passed to the "
            "decoder), or the tensor the optimizer holds is not the one the loss is computed from (rebuilt each step, "
            "e.g. `a = torch.tensor(a.item(), requires_grad=True)`, or detached). Use that output, or create each "
            "parameter once, as an `nn.Parameter`, before the optimizer, and use that same tensor in the loss.",
            evidence=[Evidence("parameters_without_gradient", schema.DIAGNOSTICS_ARTIFACT, helpers.names_cut(opt))],
        )

    def _not_in_optimizer(self, view: RunView) -> Finding | None:
        read = helpers.not_in_optimizer_reading(view, self.NAMED)
        if read is None:
            return None
        summary, advice, values = read
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.7,
            summary=summary,
            recommendation=advice,
            evidence=[Evidence("parameters_vs_optimizer", schema.DIAGNOSTICS_ARTIFACT, values)],
        )
