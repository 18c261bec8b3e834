"""Where each weight of our ResNet V2 lives in the two published families of ImageNet weights: the TF-slim model
zoo checkpoints (`resnet_v2_50/block1/unit_1/bottleneck_v2/conv1/weights`) and the Keras applications HDF5 files
(layer `conv2_block1_1_conv`, weight `kernel`). Both were made for the slim network, which ours is layer for layer;
only the names differ. Only bottleneck depths were ever published (50, 101, 152)."""

# Our layer (inside unit `stage{s}_unit{u}` for the unit layers) -> (slim scope, Keras layer). {s}: stage 1-4 as
# slim's block number; {k}: Keras' stage number, s + 1 ("conv2" is the first stage; "conv1" is the stem).
UNIT_LAYERS = {
    "preact_bn": ("block{s}/unit_{u}/bottleneck_v2/preact", "conv{k}_block{u}_preact_bn"),
    # A projection only in the first unit of a stage (a new depth); slim gives it a bias.
    "shortcut": ("block{s}/unit_{u}/bottleneck_v2/shortcut", "conv{k}_block{u}_0_conv"),
    "conv1": ("block{s}/unit_{u}/bottleneck_v2/conv1", "conv{k}_block{u}_1_conv"),
    "conv1_bn": ("block{s}/unit_{u}/bottleneck_v2/conv1/BatchNorm", "conv{k}_block{u}_1_bn"),
    "conv2": ("block{s}/unit_{u}/bottleneck_v2/conv2", "conv{k}_block{u}_2_conv"),
    "conv2_bn": ("block{s}/unit_{u}/bottleneck_v2/conv2/BatchNorm", "conv{k}_block{u}_2_bn"),
    "conv3": ("block{s}/unit_{u}/bottleneck_v2/conv3", "conv{k}_block{u}_3_conv"),
}
NETWORK_LAYERS = {
    "stem_conv": ("conv1", "conv1_conv"),
    "postnorm_bn": ("postnorm", "post_bn"),
}
HEAD = ("logits", "logits", "predictions")  # ours, slim's, Keras': the classifier, absent from a _notop file

# Our (Keras 3) weight name -> slim's variable name; Keras' files use our names (`kernel:0` in Keras 2 files).
WEIGHTS = {"kernel": "weights", "bias": "biases", "gamma": "gamma", "beta": "beta",
           "moving_mean": "moving_mean", "moving_variance": "moving_variance"}

# Slim checkpoints also hold the trainer's step counter: bookkeeping, not a weight of the network.
SLIM_BOOKKEEPING = ("global_step",)
# Slim's classifier has a background class at index 0 that Keras' files (and tfds' imagenet2012) lack.
SLIM_CLASSES, IMAGENET_CLASSES = 1001, 1000

# Regular expressions that read the units per stage off a file's names (depth inference).
SLIM_UNIT_PATTERN = r"^(?:[^/]+/)?block(\d+)/unit_(\d+)/bottleneck_v2/"
KERAS_UNIT_PATTERN = r"^conv(\d+)_block(\d+)_"
KERAS_FIRST_STAGE = 2  # Keras' conv2_* is slim's block1


def layer_names(units):
    """[(our layer, slim scope, Keras layer)] of the backbone of a bottleneck ResNet V2 with `units` per stage,
    classifier excluded."""
    rows = [(ours, slim, keras) for ours, (slim, keras) in NETWORK_LAYERS.items()]
    for s, n in enumerate(units, start=1):
        for u in range(1, n + 1):
            for ours, (slim, keras) in UNIT_LAYERS.items():
                if ours == "shortcut" and u != 1:
                    continue
                rows.append((f"stage{s}_unit{u}_{ours}", slim.format(s=s, u=u), keras.format(k=s + 1, u=u)))
    return rows
