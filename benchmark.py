"""Times a network the way the book chapter did (time_tensorflow_run):

    python benchmark.py --model=resnet_v2_152 --batch_size=32 --image_size=224 --num_batches=100 --mode=forward
    python benchmark.py --model=alexnet_lrn --noinclude_top --mode=forward,forward_backward   # the chapter's AlexNet
    python benchmark.py --model=inception_v3 --mode=forward                                   # 299 px by default
    python benchmark.py --model=resnet_v2_50 --mode=train --reference=keras   # Keras' ResNet50V2, same protocol
    python benchmark.py --peak                                                # this machine's matmul GFLOP/s
"""
from console import cuda_noise

cuda_noise.start()  # TensorFlow's CUDA probing lines, dropped where there is no GPU
import os  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from console import logs  # noqa: E402
from flags import shared  # noqa: E402

flags.DEFINE_string("model", "resnet_v2_50", "resnet_v2_<depth> (18, 34, 50, 101, 152, 200 or a CIFAR depth: 20, "
                    "56...), alexnet, alexnet_lrn, vgg16 or inception_v3.")
flags.DEFINE_list("mode", ["forward"], "Comma-separated, timed in turn: forward (inference), forward_backward (the "
                  "chapter's l2-loss gradients), train (one SGD step).")
flags.DEFINE_integer("batch_size", 32, "Images per batch.")
flags.DEFINE_integer("image_size", None, "Input height and width; default: the model's (224, inception_v3 299).")
flags.DEFINE_integer("num_classes", 1000, "Logits.")
flags.DEFINE_bool("include_top", True, "--noinclude_top: time the network up to its last feature map (AlexNet: "
                  "pool5), the chapter's protocol; forward and forward_backward only.")
flags.DEFINE_integer("num_batches", 100, "Timed batches.")
flags.DEFINE_integer("warmup_steps", 10, "Untimed batches first (graph tracing, allocator warm-up).")
shared.define_dtype("Compute dtype (Keras mixed precision)")
flags.DEFINE_bool("xla", False, "Compile the timed function with XLA.")
flags.DEFINE_enum("reference", None, ["keras"], "Time the keras.applications network of the same name instead of "
                  "ours: ResNet50V2/101V2/152V2, VGG16, InceptionV3.")
flags.DEFINE_string("data", None, "Feed batches from this dataset's training pipeline (e.g. cifar10) instead of "
                    "fixed random inputs; sets --image_size and --num_classes.")
flags.DEFINE_string("data_dir", None, "tfds data directory for --data.")
flags.DEFINE_string("profile_dir", None, "Trace the timed batches of each mode with tf.profiler into "
                    "PROFILE_DIR/<mode>; python -m training.benchmark.op_profile DIR... sums traces by op type, side by side.")
flags.DEFINE_string("exported", None, "Time every format of an export.py --export_dir (batch 1 latency, batch 32 "
                    "throughput, each on its own runtime) and print its table beside the verification model_card.json "
                    "recorded.")
flags.DEFINE_bool("peak", False, "Only time a 2048x2048 matmul (in --dtype): the machine's practical peak.")
flags.adopt_module_key_flags(shared)  # --help lists them with this tool's own
FLAGS = flags.FLAGS

KERAS_REFERENCES = {"resnet_v2_50": "ResNet50V2", "resnet_v2_101": "ResNet101V2", "resnet_v2_152": "ResNet152V2",
                    "vgg16": "VGG16", "inception_v3": "InceptionV3"}


def parse_model(name):
    """--model -> (name in model.MODELS, ResNet depth or None); ValueError if it is neither form."""
    import model
    family, _, depth = name.rpartition("_")
    if family == "resnet_v2" and depth.isdigit():
        return family, int(depth)
    if name in model.MODELS and name != "resnet_v2":
        return name, None
    others = ", ".join(n for n in model.MODELS if n != "resnet_v2")
    raise ValueError(f"--model must be resnet_v2_<depth> (e.g. resnet_v2_50) or one of {others}, not {name!r}")


def build(name, depth, image_size, num_classes, include_top):
    """(model, description) for ours or, with --reference=keras, Keras' application of the same name."""
    import keras
    import model
    if FLAGS.reference == "keras":
        if FLAGS.model not in KERAS_REFERENCES:
            raise ValueError(f"--reference=keras has depths 50, 101, 152 and vgg16, inception_v3, not {FLAGS.model}")
        # classifier_activation=None: logits, like ours (the train mode's loss takes logits). Keras' VGG16 keeps
        # its 4096-wide layers at small sizes, so it matches ours only above 64 px.
        net = getattr(keras.applications, KERAS_REFERENCES[FLAGS.model])(
            weights=None, include_top=include_top, input_shape=(image_size, image_size, 3), classes=num_classes,
            classifier_activation=None)
        return net, f"keras.applications.{KERAS_REFERENCES[FLAGS.model]}"
    net, spec = model.create_model(name, num_classes, image_size, depth=depth or 50, include_top=include_top)
    if depth:
        return net, f"{FLAGS.model}: {spec.family} family, {spec.unit} units"
    return net, f"{FLAGS.model}: {spec.variant}" + ("" if include_top else f", up to {net.layers[-1].name}")


def print_exported(export_dir):
    """--exported: the export's table, each format timed again here."""
    from inference import verify
    try:
        print("\n".join(verify.retime(export_dir)))
    except verify.VerificationError as e:
        sys.exit(f"error: {e}")


def main(argv):
    del argv
    if "train" in FLAGS.mode and not FLAGS.include_top:  # before TensorFlow's import: fail in a blink
        sys.exit("error: --mode=train needs the logits: drop --noinclude_top")
    cuda_noise.import_tensorflow()  # the devices are probed: the CUDA-line filter ends
    import data
    import model
    from training.benchmark import timing
    from training.compute import network, precision

    bad_modes = [m for m in FLAGS.mode if m not in timing.MODES]
    if bad_modes or not FLAGS.mode:
        sys.exit(f"error: --mode takes a comma-separated list of {', '.join(timing.MODES)}, not {bad_modes}")
    # The first line says what is timed on: numbers from another CPU (or its bf16/AMX units) don't compare.
    choice, hardware = precision.choose(**shared.dtype_request(FLAGS, "benchmark.py"), num_gpus=1)  # GPU 0, if any
    print(hardware.describe())
    if FLAGS.exported:
        return print_exported(FLAGS.exported)
    print(choice.line())
    if FLAGS.peak:
        print(f"peak: {timing.matmul_peak(dtype=choice.dtype):.1f} GFLOP/s (2048x2048 {choice.dtype} matmul, best "
              "of 20)")
        return
    precision.set_global(choice.dtype)
    num_classes, dataset = FLAGS.num_classes, None
    try:
        name, depth = parse_model(FLAGS.model)
        image_size = FLAGS.image_size or model.MODELS[name].image_size
        if FLAGS.data:
            info = data.get_info(FLAGS.data, FLAGS.data_dir)
            image_size, num_classes = info.image_size, info.num_classes
            dataset = data.make_train_dataset(info, data_dir=FLAGS.data_dir, global_batch_size=FLAGS.batch_size)
        with network.building_kernels(hardware, choice.dtype) as chosen:
            net, description = build(name, depth, image_size, num_classes, FLAGS.include_top)
    except (ValueError, data.DataError) as e:
        sys.exit(f"error: {e}")
    # Forward times inference as eval.py runs it (Keras' network as Keras runs it).
    inference = net if FLAGS.reference or "forward" not in FLAGS.mode else network.for_inference(
        net, hardware, choice.dtype)
    peak = None
    for mode in FLAGS.mode:
        timed = inference if mode == "forward" else net
        weights = "constants" if isinstance(timed, network.Frozen) else "variables"
        print(f"{description}, batch {FLAGS.batch_size}, {image_size}x{image_size}, mode {mode}, "
              f"dtype {choice.dtype}, xla {FLAGS.xla}, inputs {FLAGS.data or 'random'}"
              + ("" if FLAGS.reference else f", batch norm inference {chosen.norm}, 1x1 convolution training "
                                             f"{chosen.pointwise}, 3x3 convolution {chosen.spatial}, "
                                             f"weights as {weights}"))
        fn = timing.make_workload(timed, mode, FLAGS.batch_size, image_size, num_classes, FLAGS.xla, dataset)
        with timing.profiled(FLAGS.profile_dir and os.path.join(FLAGS.profile_dir, mode)):
            mean, _ = timing.time_run(fn, timing.MODES[mode], FLAGS.num_batches, FLAGS.warmup_steps)
        achieved = timing.flops_per_batch(net, mode, FLAGS.batch_size) / mean / 1e9
        # Once per process (the machine doesn't change between modes), in the dtype the model computes in.
        peak = peak or timing.matmul_peak(dtype=choice.dtype)
        print(f"images/s: {FLAGS.batch_size / mean:.1f}")
        print(f"model: {model.flops_per_image(net) / 1e9:.3f} G multiply-adds per image; "
              f"achieved: {achieved:.1f} GFLOP/s")
        print(f"peak: {peak:.1f} GFLOP/s (2048x2048 {choice.dtype} matmul); model at {100 * achieved / peak:.0f}% "
              "of it")


if __name__ == "__main__":
    logs.run(main)
