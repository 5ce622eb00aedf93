"""A generated corpus of small real training runs at population scale, labelled by outcome, and a
scorer of the auditor's verdicts on it (`python -m benchmarks.corpus --help`, README.md)."""
