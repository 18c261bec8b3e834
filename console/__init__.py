"""Console plumbing every layer may use (entry points, flags/, model/ and data/'s CLIs, training/): one-line
failures and exit statuses (logs.py), and TensorFlow's CUDA probing lines dropped on machines without a GPU
(cuda_noise.py). It imports no other package of the project."""
