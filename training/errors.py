"""The exception every part of training raises for a run that can't start or go on."""


class TrainingError(Exception):
    """A run that can't start or go on, with a one-line reason."""
