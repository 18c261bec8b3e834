"""The one frozen config a run is made of. flags/ builds it from the command line; nothing else reads flags."""
import dataclasses
import json

# Fields that decide the network's variables: a model_dir holding a checkpoint with other values can't be resumed.
ARCHITECTURE_FIELDS = ("dataset", "model", "depth", "unit", "arch", "width", "image_size", "num_classes")


@dataclasses.dataclass(frozen=True)
class Config:
    # data
    dataset: str
    data_dir: str | None
    image_size: int
    num_classes: int
    strict: bool
    # model
    model_dir: str
    depth: int
    unit: str
    arch: str
    width: float
    sync_bn: bool
    bn_momentum: float
    # optimization (learning_rate is the base rate; `lr` below is after linear batch scaling)
    batch_size: int
    train_steps: int
    steps_per_epoch: int
    learning_rate: float
    lr_batch_denominator: int
    lr_schedule: str
    lr_decay_epochs: tuple
    warmup_epochs: float
    momentum: float
    nesterov: bool
    weight_decay: float
    label_smoothing: float
    # loop
    epochs_between_evals: float
    steps_per_loop: int
    log_every_steps: int
    keep_checkpoints: int
    keep_best: int
    nan_policy: str                 # 'stop' | 'skip_batch'
    debug_nan_at_step: int | None   # test hook: this step's loss is made NaN
    seed: int
    deterministic: bool
    # devices and numerics
    dtype: str
    xla: bool
    strategy: str
    num_gpus: int | None
    cpu_devices: int
    profile_steps: tuple = ()       # (first, last) steps traced by tf.profiler, or ()
    dtype_reason: str = ""          # why `dtype` (--dtype=auto is resolved from the hardware when a run starts)
    # fine-tuning
    init_checkpoint: str | None = None  # a run dir or checkpoint to warm-start a new run from
    freeze_backbone: bool = False       # train only the classifier
    model: str = "resnet_v2"            # a key of model.MODELS; depth, unit, arch and width are the ResNet's
    # the modern recipe's parts (flags/recipes.py); precise batch norm (training/compute/bn_stats.py)
    recipe: str = "classic"             # runs from before the recipes existed trained with the classic one
    ema_decay: float = 0.0
    cutout: int = 0
    randaugment_layers: int = 0
    randaugment_magnitude: float = 9.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mixup_prob: float = 0.0
    cutmix_prob: float = 0.0
    precise_bn_examples: int = 0        # 0 in runs from before it existed: they evaluated with moving averages
    # imported weights (pretrained.py)
    include_top: bool = True            # False: a backbone without a classifier (a _notop file), for fine-tuning
    imported_from: str | None = None    # the weights' source; such a run is never trained itself
    # multi-worker
    worker_join_timeout: float = 600.0  # seconds a worker waits for the others of TF_CONFIG to start
    # the splits (data/splits.py); runs from before they existed trained on all of train and evaluated on test
    validation_split: float | None = 0.0  # None: the dataset's own; 0: none; else the fraction carved from train
    test_split: float | None = None       # flat folders: the fraction carved as the test split
    # --time_budget (training/loop/budget.py): seconds from the process' start to the run's end, 0: none; the plan
    # it resolved to (measured speed, costs, steps, deadline), which a resume takes as it is
    time_budget: float = 0.0
    budget_plan: dict | None = None
    # tf.data service (data/service.py): grpc://HOST:PORT of the dispatcher whose workers make the training batches
    data_service: str | None = None

    @property
    def lr(self):
        return self.learning_rate * self.batch_size / self.lr_batch_denominator

    @property
    def eval_every_steps(self):
        return max(1, round(self.epochs_between_evals * self.steps_per_epoch))

    def describe_recipe(self):
        """One line: the recipe and the values it resolved to for this run's length (config.json records them)."""
        epochs = self.train_steps / self.steps_per_epoch
        if self.lr_schedule == "piecewise":
            points = ", ".join(f"{e:g}" for e in self.lr_decay_epochs) or "none"
            schedule = f"piecewise x0.1 at epochs {points} of {epochs:g}"
        else:
            schedule = f"cosine over {epochs:g} epochs"
        parts = [f"lr {self.lr:g} {schedule}" + (f" after {self.warmup_epochs:g} warm-up" if self.warmup_epochs
                                                  else ""),
                 f"{'Nesterov ' if self.nesterov else ''}momentum {self.momentum:g}",
                 f"weight decay {self.weight_decay:g}", f"batch-norm momentum {self.bn_momentum:g}"]
        parts += [f"{name} {value:g}" for name, value in (
            ("label smoothing", self.label_smoothing), ("EMA decay", self.ema_decay), ("cutout", self.cutout),
            ("RandAugment layers", self.randaugment_layers), ("mixup", self.mixup_alpha),
            ("cutmix", self.cutmix_alpha)) if value]
        return f"recipe {self.recipe}: " + "; ".join(parts)

    def augment(self):
        """What the training pipeline adds to crop and flip (data.Augment's fields)."""
        return {f: getattr(self, f) for f in ("cutout", "randaugment_layers", "randaugment_magnitude", "mixup_alpha",
                                              "cutmix_alpha", "mixup_prob", "cutmix_prob")}

    def architecture(self):
        return {f: getattr(self, f) for f in ARCHITECTURE_FIELDS}

    @classmethod
    def defaults(cls):
        """Fields with defaults, which a config.json written before they existed lacks."""
        return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)
