"""The book chapter's timing of networks (benchmark.py) and the op profile of its traces."""
