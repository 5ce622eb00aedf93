"""`python -m benchmarks.programs`: see run.py."""

from benchmarks.programs.run import main

if __name__ == "__main__":
    main()
