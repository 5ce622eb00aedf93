"""`nonfinite_loss`: the loss curve holds NaN or Inf."""

from __future__ import annotations

from mlflow_nnaudit.auditor.curves import GRAD_NORM, TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_factor, fmt_num, fmt_step
from mlflow_nnaudit.auditor.rules.helpers import LEARNING_RATE_READS, finite_before, growth_before_nonfinite


class NonFiniteLoss(Rule):
    """The training (or validation) loss curve holds NaN or Inf.

    Read straight off the curve (MLflow stores NaN with its `is_nan` flag and Inf as
    1.797e308, both recognised). The finding says at which step the loss stopped being a
    number and, where a loss or gradient-norm curve shows it, how fast it grew just before:
    a blow-up in the last few logged points points to the learning rate, a sudden NaN from a
    calm curve points to the data or a numerically unsafe operation.
    """

    cause = "nonfinite_loss"
    #: upstream causes it follows from, when found too (listed after them): a loss that blew up into
    #: NaN is the too-high learning rate's consequence; `exploding_gradients` only on a run whose gradient
    #: norm blew up (`follows`, `helpers.grad_blew_up_before`): a NaN from log(0) makes the gradient NaN
    #: with it, not before
    consequence_of = (
        "nonfinite_inputs",
        "loss_input_mismatch",
        "gradients_not_zeroed",
        "learning_rate_too_high",
    )
    reads = LEARNING_RATE_READS

    #: the gradient norm's last value before the NaN vs its early median: this much growth is a blow-up
    GRAD_GROWTH = helpers.GRAD_GROWTH_BEFORE_NAN

    def evaluate(self, view: RunView) -> Finding | None:
        for role in (TRAIN_LOSS, VAL_LOSS):
            nf = view.nonfinite(role)
            if nf is None or nf.first_index is None:
                continue
            curve = view.curve(role)
            x = curve.x()
            step = float(x[nf.first_index])
            evidence = [
                Evidence(
                    "nonfinite",
                    curve.key,
                    {"first_nonfinite_step": step, "kind": nf.kind, "nonfinite_points": nf.count, "points": len(curve)},
                    (step, float(x[-1])),
                )
            ]
            growth_text = ""
            growth = growth_before_nonfinite(finite_before(curve, nf.first_index))
            if growth is not None:
                low, last = growth
                growth_text = f" after rising {fmt_factor(last / low)} from its lowest value {fmt_num(low)}"
                evidence.append(Evidence("growth_before_nonfinite", curve.key, {"min": low, "last_finite": last}))
            ratio = helpers.grad_growth_before(view, step)
            if ratio is not None:
                growth_text += f"; the gradient norm had grown {fmt_factor(ratio)} before it"
                evidence.append(Evidence("grad_norm_growth", view.curve(GRAD_NORM).key, {"ratio": ratio}))
            where = "training" if role == TRAIN_LOSS else "validation"
            lr = view.learning_rate()
            lr_text = f" (it was {fmt_num(lr[1])})" if lr else ""
            blew_up = bool(growth_text)
            if blew_up:
                advice = (
                    f"lower the learning rate 3-10x{lr_text}, add gradient clipping "
                    "(`torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)`), and check for log/exp/division "
                    "on unbounded values"
                )
            else:
                advice = (
                    "look for NaN/Inf in the inputs and targets, and for log(0), division by zero or exp overflow "
                    f"in the model and loss (`torch.autograd.set_detect_anomaly(True)` finds the op); if inputs are "
                    f"clean, lower the learning rate{lr_text} and add gradient clipping"
                )
            return self.finding(
                confidence="high",
                severity="failed",
                score=0.95,  # below nonfinite_inputs: NaN inputs are the cause, a NaN loss the symptom
                summary=f"the {where} loss became {nf.kind.upper() if nf.kind == 'nan' else 'Inf'} at step "
                f"{fmt_step(step)}{growth_text}",
                recommendation=f"The {where} loss became {'NaN' if nf.kind == 'nan' else 'Inf'} at step "
                f"{fmt_step(step)}{growth_text}: {advice}.",
                evidence=evidence,
                # the norm blew up by either reading (`helpers.grad_blew_up_before`; the ratio is read above)
                follows=("exploding_gradients",) if ratio is not None or helpers.grad_levels_grew(view) else (),
            )
        return None
