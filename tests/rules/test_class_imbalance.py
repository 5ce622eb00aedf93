"""class_imbalance: one class outnumbers the rarest present class many times."""

from tests.rules.conftest import classification_loss, fires, healthy_diagnostics, healthy_loss, make_view, quiet

CAUSE = "class_imbalance"


def run(counts):
    d = healthy_diagnostics(loss=classification_loss(len(counts), label_counts=counts))
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_when_one_class_makes_up_95_percent():
    f = fires(CAUSE, run([5700, 180, 120]))
    assert f.confidence == "high" and f.severity == "warning" and "class 0 makes up 95%" in f.summary


def test_quiet_on_balanced_classes():
    quiet(CAUSE, run([1930, 2110, 1960]))


def test_quiet_on_a_mild_imbalance():
    quiet(CAUSE, run([3000, 2000, 1000]))  # 3 to 1: ordinary, well under the rule's ratio


def test_a_class_that_never_occurs_is_not_the_rarest():
    quiet(CAUSE, run([3000, 3000, 0]))


def test_quiet_on_too_few_labels_to_count():
    quiet(CAUSE, run([30, 1, 1]))  # a handful of sampled labels says nothing
