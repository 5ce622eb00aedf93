"""Sample training runs with injected faults (see faults.py). `python -m sample_runs --help`."""
