"""A 3x3, stride-1, 'same' convolution as Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast
Algorithms for Convolutional Neural Networks", 2015): the input cut into overlapping 4x4 tiles, each transformed
by adds; 16 matrix products with 2.25x fewer multiply-adds than the direct convolution's; 2x2 outputs per tile
back by adds (model.resnet_v2.Conv2D's spatial_kernel)."""
import tensorflow as tf

# F(2x2, 3x3): Y = A^T [(G g G^T) * (B^T d B)] A for a 4x4 tile d and a 3x3 kernel g, with
# G = ((1, 0, 0), (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1)).


def transform_kernel(kernel):
    """[3, 3, C, K] -> [16, C, K]: G g G^T per tile position. Element-wise adds in one fixed order, so a frozen
    graph's folded constant is bitwise the kernel the variables compute each call."""
    rows = _kernel_transform(tf.unstack(kernel, axis=0), axis=0)  # [4, 3, C, K]
    tiles = _kernel_transform(tf.unstack(rows, axis=1), axis=1)  # [4, 4, C, K]
    return tf.reshape(tiles, (16, *kernel.shape[2:]))


def _kernel_transform(g, axis):
    half = tf.constant(0.5, g[0].dtype)
    return tf.stack([g[0], (g[0] + g[1] + g[2]) * half, (g[0] - g[1] + g[2]) * half, g[2]], axis=axis)


def applies(layer, inputs):
    """True where this algorithm beats the direct convolution: a 3x3, stride-1, undilated, 'same' Conv2D on NHWC
    inputs of at least 256 channels and 2x2 pixels. Measured on ResNet's shapes at batch 32 (docs/performance.md):
    at 256 and 512 channels (14x14, 7x7) it took 0.67-0.71x the time of oneDNN's convolution with oneDNN held to
    AVX2 and 0.74-0.75x unheld; at 128 (28x28) 0.97x and 1.18x; at 64 (56x56) 1.4x and 1.7x; on 1x1 inputs, a
    4x4 tile per output, 3.3x."""
    return (tuple(layer.kernel_size) == (3, 3) and tuple(layer.strides) == (1, 1)
            and tuple(layer.dilation_rate) == (1, 1) and layer.padding == "same" and layer.groups == 1
            and layer.data_format == "channels_last" and len(inputs.shape) == 4
            and None not in inputs.shape[1:] and inputs.shape[-1] >= 256 and min(inputs.shape[1:3]) >= 2)


def conv2d(inputs, transformed_kernel):
    """tf.nn.conv2d(inputs, kernel, 1, "SAME") for NHWC `inputs` and transform_kernel(kernel), within 3e-6 of it
    relative to the largest output. The products are TensorFlow's (oneDNN's on CPUs), between two XLA-compiled
    transforms: XLA's own matrix kernels were no faster, and they pick their instruction set from the CPU alone."""
    _, height, width, _ = inputs.shape
    products = tf.matmul(_tiles(inputs), transformed_kernel)
    return _untile(products, tf.shape(inputs)[0], height, width)


@tf.custom_gradient
def conv2d_for_training(inputs, kernel):
    """tf.nn.conv2d(inputs, kernel, 1, "SAME") as conv2d computes it, and its gradients: the input's as conv2d
    again (the transposed convolution of a stride-1 'same' 3x3 one is the same convolution with the kernel turned
    180 degrees and its channels swapped), the kernel's as TensorFlow's Conv2DBackpropFilter. Forward and both
    gradients took 0.81x the time of oneDNN's three kernels at 14x14x256 with oneDNN held to AVX2 (94 against
    116 ms); the kernel's gradient as Winograd products (autodiff through conv2d) was slower."""
    outputs = conv2d(inputs, transform_kernel(kernel))

    def gradients(upstream):
        turned = tf.transpose(tf.reverse(kernel, (0, 1)), (0, 1, 3, 2))
        input_gradient = conv2d(upstream, transform_kernel(turned))
        kernel_gradient = tf.raw_ops.Conv2DBackpropFilter(
            input=inputs, filter_sizes=tf.shape(kernel), out_backprop=upstream, strides=(1, 1, 1, 1), padding="SAME")
        return input_gradient, kernel_gradient
    return outputs, gradients


def _tiles_ops(inputs):
    """[N, H, W, C] -> [16, N * ceil(H/2) * ceil(W/2), C]: B^T d B for each 4x4 tile d, a tile per 2x2 outputs."""
    _, height, width, channels = inputs.shape
    tiles_h, tiles_w = (height + 1) // 2, (width + 1) // 2
    # Tile (i, j) reads padded rows 2i..2i+3 and columns 2j..2j+3.
    padded = tf.pad(inputs, ((0, 0), (1, 2 * tiles_h + 1 - height), (1, 2 * tiles_w + 1 - width), (0, 0)))
    rows = _input_transform([padded[:, r:r + 2 * tiles_h:2] for r in range(4)], axis=0)  # [4, N, th, w+, C]
    tiles = _input_transform([rows[:, :, :, c:c + 2 * tiles_w:2] for c in range(4)], axis=1)  # [4, 4, N, th, tw, C]
    return tf.reshape(tiles, (16, -1, channels))


def _untile_ops(products, batch, height, width):
    """[16, N * th * tw, K] -> [N, H, W, K]: A^T m A for each tile's products m."""
    tiles_h, tiles_w = (height + 1) // 2, (width + 1) // 2
    channels_out = products.shape[-1]
    products = tf.reshape(products, (4, 4, batch, tiles_h, tiles_w, channels_out))
    rows = _output_transform(products)  # 2 x [4, N, th, tw, K]
    outputs = [tf.stack(_output_transform(row), axis=3) for row in rows]  # 2 x [N, th, tw, 2, K]
    outputs = tf.reshape(tf.stack(outputs, axis=2), (batch, 2 * tiles_h, 2 * tiles_w, channels_out))
    return outputs[:, :height, :width]


# XLA fuses each transform's slices, adds and stacks into a loop over its output: as TensorFlow ops, the input
# transform alone took longer than the direct convolution.
_tiles = tf.function(_tiles_ops, jit_compile=True, autograph=False)
_untile = tf.function(_untile_ops, jit_compile=True, autograph=False)


def _input_transform(d, axis):
    # B^T d: the rows (or columns) of B^T are (1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1).
    return tf.stack([d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]], axis=axis)


def _output_transform(m):
    # A^T m: the rows of A^T are (1, 1, 1, 0) and (0, 1, -1, -1).
    return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]
