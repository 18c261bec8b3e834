"""Input-pipeline throughput without a model: `python -m data.benchmark` (images/s, per core, and, for large
images, where the time goes beside the Model Garden's pipeline and decode alone), and the real-photograph test
folder it is measured on (`python -m data.benchmark.photos`)."""
