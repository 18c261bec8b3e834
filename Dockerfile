# GPU image for train.py (eval.py, predict.py, export.py and benchmark.py run with --entrypoint python).
# docs/distributed.md 'Docker' has every command (prepare, train, stop, eval, predict, export, benchmark); in short:
#   docker build -t resnet-v2 .
#   mkdir -p runs && docker run --gpus all --user "$(id -u):$(id -g)" -v "$HOME/tensorflow_datasets:/data" \
#       -v "$PWD/runs:/runs" resnet-v2 --dataset=cifar10 --depth=50 --model_dir=/runs/cifar10_resnet_v2_50
# BASE_IMAGE: the official TensorFlow GPU image. Any image with Python 3.11 and pip builds the same tool for CPUs
# (how the build is tested where registries can't be reached: docs/distributed.md 'Docker').
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE_IMAGE}

WORKDIR /app
COPY requirements.txt .
# PIP_ROOT_USER_ACTION: the build installs as root on purpose (the image's own Python), so no warning about it.
ENV PIP_ROOT_USER_ACTION=ignore
RUN pip install --no-cache-dir -r requirements.txt
# matplotlib's font cache, built once here: TensorFlow imports matplotlib, and an empty MPLCONFIGDIR made every
# container spend seconds on "generated new fontManager". 1777 like /tmp: any --user reads it and may write there.
RUN MPLCONFIGDIR=/tmp/matplotlib python -c "import matplotlib.font_manager" && chmod 1777 /tmp/matplotlib
COPY model/ model/
COPY data/ data/
COPY flags/ flags/
COPY console/ console/
COPY training/ training/
COPY inference/ inference/
COPY train.py eval.py benchmark.py predict.py export.py pretrained.py ./

# PYTHONUNBUFFERED: `docker logs` shows each line when it is printed, and a killed container keeps its output.
# HOME and MPLCONFIGDIR: writable under any --user (Keras' download cache, matplotlib's config).
# tfds reads and writes datasets under /data; each GPU gets its own host threads for kernel launches.
# No VOLUME: the manual's commands mount /data and /runs themselves, so no anonymous volume is left behind.
ENV PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    TFDS_DATA_DIR=/data \
    TF_GPU_THREAD_MODE=gpu_private \
    TF_CPP_MIN_LOG_LEVEL=2
ENTRYPOINT ["python", "train.py"]
