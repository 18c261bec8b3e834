# GPU image for train.py (eval.py, predict.py, export.py and benchmark.py run with --entrypoint python).
#   docker build -t resnet-v2 .
#   docker run --gpus all -v $HOME/tensorflow_datasets:/data -v $PWD/runs:/runs resnet-v2 \
#       --dataset=cifar10 --depth=50 --data_dir=/data --model_dir=/runs/cifar10_resnet_v2_50
FROM tensorflow/tensorflow:2.21.0-gpu

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY model/ model/
COPY data/ data/
COPY flags/ flags/
COPY training/ training/
COPY inference/ inference/
COPY train.py eval.py benchmark.py predict.py export.py pretrained.py ./

# tfds reads and writes datasets under /data; each GPU gets its own host threads for kernel launches.
ENV TFDS_DATA_DIR=/data \
    TF_GPU_THREAD_MODE=gpu_private \
    TF_CPP_MIN_LOG_LEVEL=2
VOLUME ["/data", "/runs"]
ENTRYPOINT ["python", "train.py"]
