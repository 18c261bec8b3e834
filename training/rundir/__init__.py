"""What a run keeps in its --model_dir: config.json and start-up checks, checkpoints, the one-writer lock,
TensorBoard and metrics.csv, warm starts and imported weights."""
