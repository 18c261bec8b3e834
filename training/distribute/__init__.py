"""Where the steps run: the tf.distribute strategy, the cluster of TF_CONFIG, and a lost peer or a full disk mid-run
as one line."""
