"""The per-replica train and eval steps. Each returns *sums* over its examples, so that adding the replicas'
results (ReduceOp.SUM) and dividing by the example count gives exact global means."""
import tensorflow as tf

import model as resnet
from data import preprocessing


def set_graph_rewrites():
    """Grappler's rewrites for this process. train.py and eval.py both call it, so that eval.py compiles a run's
    evaluation exactly as the run did: in bfloat16 the arithmetic optimizer's rewrites alone changed the top-1,
    top-5 or loss of 4 of 6 depth-8 runs (tests/entry_points/test_mixed_precision_cli.py's, seeds 1-6; top-1 by one image in 2)."""
    # It rewrites an AddN inside the multi-step train loop into an accumulator whose temporary variable then
    # "already exists" (AlreadyExistsError at the third call of a ResNet-20, batch 128, on TF 2.21 CPU;
    # tests/entry_points/test_cli.py keeps that run). Off, that run trained at 648 images/s; on, at 622 until the crash.
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})


def cross_entropy(labels, logits, label_smoothing=0.0):
    """Per-example softmax cross-entropy in float32, with optional label smoothing. labels: int class ids [b], or
    soft targets [b, classes] (mixup, cutmix) summing to 1."""
    num_classes = logits.shape[-1]
    targets = tf.cast(labels, tf.float32) if labels.shape.rank == 2 else tf.one_hot(labels, num_classes)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    return tf.nn.softmax_cross_entropy_with_logits(targets, tf.cast(logits, tf.float32))


def l2_term(model, weight_decay):
    """weight_decay * sum(w^2) / 2 over conv and dense kernels: the classic `tf.nn.l2_loss` regularizer."""
    kernels = resnet.weight_decay_variables(model)
    return weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(k, tf.float32)) for k in kernels])


def make_train_step(model, optimizer, *, global_batch_size, weight_decay, label_smoothing=0.0,
                    skip_nonfinite=False, poison_step=None, normalization=None):
    """Returns step(images, labels, step) -> dict of sums, to be run once per replica.

    Calling the model in training mode also updates the batch-norm moving statistics (Keras assigns them inside
    the layer call), so every step that trains the weights also moves the statistics: TF1's UPDATE_OPS, built in.
    skip_nonfinite: a step whose loss or gradients are not finite on any replica changes nothing.
    poison_step: a test hook (--debug_nan_at_step) that makes that step's loss NaN, to rehearse --nan_policy.
    normalization: (mean, std) per channel when the images arrive as pixels (make_train_dataset(pixels=True)):
      they are normalized here, on the replica's device.
    """
    def train_step(images, labels, step):
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if normalization is not None:
            images = preprocessing.normalize(images, *normalization)
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            per_example = cross_entropy(labels, logits, label_smoothing)
            if poison_step is not None:
                per_example += tf.where(tf.equal(step, poison_step), float("nan"), 0.0)
            # The one place the loss is scaled: mean over the *global* batch; gradients are then summed over
            # replicas, so each replica contributes its 1/num_replicas share of the L2 term.
            regularization = l2_term(model, weight_decay) / num_replicas
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size) + regularization
            scaled_loss = optimizer.scale_loss(loss)  # float16 loss scaling; identity otherwise
        grads = tape.gradient(scaled_loss, model.trainable_variables)
        finite = tf.math.is_finite(loss)
        if skip_nonfinite:
            finite = tf.logical_and(finite, tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
            _apply_if_finite_everywhere(optimizer, grads, model.trainable_variables, finite)
        else:
            optimizer.apply(grads, model.trainable_variables)
        keep = tf.cast(finite, tf.float32)  # a non-finite step's numbers stay out of the logged means
        return {"cross_entropy": tf.where(finite, tf.reduce_sum(per_example), 0.0),
                "l2": regularization,
                "correct": tf.reduce_sum(_correct(labels, logits, 1)) * keep,
                "examples": tf.cast(tf.shape(logits)[0], tf.float32) * keep,
                "nonfinite": 1.0 - keep}
    return train_step


def _apply_if_finite_everywhere(optimizer, grads, variables, finite):
    """optimizer.apply only if every replica's step is finite (the cond must sit in cross-replica context, as in
    Keras' LossScaleOptimizer, because apply itself calls merge_call)."""
    context = tf.distribute.get_replica_context()
    bad = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))

    def cross_replica(distribution, grads, bad):
        def apply():
            distribution.extended.call_for_each_replica(optimizer.apply, args=(grads, variables))

        tf.cond(distribution.experimental_local_results(bad)[0] == 0.0, apply, lambda: None)

    context.merge_call(cross_replica, args=(grads, bad))


def predict(model, images, tta="none", image_size=None):
    """Logits [b, classes] in float32; with test-time augmentation, the log of the softmax probabilities
    averaged over the views (data/preprocessing.py tta_views), which softmax, argmax and the loss take alike."""
    if tta == "none":
        return tf.cast(model(images, training=False), tf.float32)
    views = preprocessing.tta_views(images, tta, image_size)
    probabilities = tf.map_fn(lambda view: tf.nn.softmax(tf.cast(model(view, training=False), tf.float32)), views,
                              fn_output_signature=tf.float32)
    return tf.math.log(tf.reduce_mean(probabilities, axis=0) + 1e-12)


def make_eval_step(model, num_classes, tta="none", image_size=None):
    """Returns step(images, labels, weights) -> dict of weighted sums; weight-0 examples are padding."""
    def eval_step(images, labels, weights):
        logits = predict(model, images, tta, image_size)
        labels = tf.maximum(labels, 0)  # padding may carry label -1; its weight is 0
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {"cross_entropy": tf.reduce_sum(cross_entropy(labels, logits) * weights),
                "correct": tf.reduce_sum(_correct(labels, logits, 1) * weights),
                "correct_top5": tf.reduce_sum(_correct(labels, logits, min(5, num_classes)) * weights),
                "examples": tf.reduce_sum(weights),
                # [true, predicted] counts; padding has weight 0.
                "confusion": tf.math.confusion_matrix(labels, predictions, num_classes, weights=weights,
                                                      dtype=tf.float32)}
    return eval_step


def _correct(labels, logits, k):
    """1 where the class is among the top k; for soft targets the class is their largest (mixup's lam >= 0.5
    side), so that training top-1 under mixup counts the dominant image."""
    if labels.shape.rank == 2:
        labels = tf.argmax(labels, axis=-1, output_type=tf.int32)
    return tf.cast(tf.math.in_top_k(labels, tf.cast(logits, tf.float32), k), tf.float32)
