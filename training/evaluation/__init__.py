"""Evaluation: every example of a split counted once, of a run's checkpoints (eval.py), with its reports."""
