"""`nonfinite_inputs`: NaN or Inf in the model's inputs."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import NAN_COLUMN_READS, nan_columns


class NonfiniteInputs(Rule):
    """The recorder keeps the batch statistics of the step where the training loss first became
    non-finite (and of the step before): NaN or Inf in that step's model input or loss target
    is the cause of the non-finite loss, whatever the sampled statistics say. Besides, it
    counts NaN and Inf values in the sampled training and evaluation input batches; any at all
    is reported. When the NaN/Inf fill whole features that never vary (`helpers.nan_columns`: a
    constant column standardised by its zero std), the finding follows `constant_features`."""

    cause = "nonfinite_inputs"
    PHASES = ("train", "eval")  # the input statistics the recorder keeps apart
    reads = (
        ("inputs", "eval", "nonfinite_share"),
        ("moments", schema.MOMENT_FIRST_NONFINITE_LOSS),
        ("moments", schema.MOMENT_FIRST_LOSS_SPIKE),
        *NAN_COLUMN_READS,
    )

    def evaluate(self, view: RunView) -> Finding | None:
        shares = {phase: view.fact("inputs", phase, "nonfinite_share") for phase in self.PHASES}
        bad = {k: v for k, v in shares.items() if isinstance(v, (int, float)) and v > 0}
        moment = view.moment(schema.MOMENT_FIRST_NONFINITE_LOSS) or view.moment(schema.MOMENT_FIRST_LOSS_SPIKE)
        at_moment = moment is not None and moment.data_finite is False
        if not bad and not at_moment:
            return None
        parts = []
        evidence = []
        if at_moment:
            what = {"inputs": moment.inputs_nonfinite, "targets": moment.targets_nonfinite}
            what = {k: v for k, v in what.items() if v}
            event = "became NaN/Inf" if moment.kind == schema.MOMENT_FIRST_NONFINITE_LOSS else "first spiked"
            parts.append(
                f"the training loss {event} at step {moment.step} on a batch with "
                + " and ".join(f"{v:.2%} NaN/Inf {k}" for k, v in what.items())
            )
            evidence.append(
                Evidence(
                    "batch_at_first_nonfinite_loss",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {
                        "step": moment.step,
                        **{f"{k}_nonfinite_share": v for k, v in what.items()},
                        "previous_inputs_nonfinite_share": moment.previous_inputs_nonfinite,
                    },
                )
            )
        if bad:
            parts.append(" and ".join(f"{v:.2%} of the sampled {k} input values are NaN/Inf" for k, v in bad.items()))
            evidence.append(Evidence("input_nonfinite", schema.DIAGNOSTICS_ARTIFACT, bad))
        where = "; ".join(parts)
        return self.finding(
            confidence="high",
            severity="failed",
            score=1.0,
            summary=f"NaN/Inf in the data: {where}",
            recommendation=f"The data contains NaN or Inf ({where}): find them with `torch.isfinite(x).all()` on "
            "the dataset, then impute or drop them (and check divisions and logs in the preprocessing). The "
            "non-finite loss and gradients follow from the data, not from the learning rate.",
            evidence=evidence,
            follows=("constant_features",) if nan_columns(view) else (),
        )
