"""export.py's library side: a SavedModel that takes encoded images (or uint8 image tensors) of any size, applies
the run's eval preprocessing, and returns probabilities, the top-k classes and their names."""
import tensorflow as tf

from inference import trained
from training.compute import step as steps

BYTES_SIGNATURE, IMAGES_SIGNATURE = "serving_default", "images"


class Classifier(tf.Module):
    """The trained network plus its preprocessing and class names, as tf.functions with fixed signatures."""

    def __init__(self, model, top_k=5, tta="none"):
        super().__init__(name="classifier")
        if tta == "flip+crops" and model.info.small_images:
            raise ValueError(f"--tta=flip+crops crops a margin small images ({model.info.image_size} px) don't have; "
                             "use --tta=flip")
        self.net, self.info, self.tta = model.net, model.info, tta
        self.top_k = min(top_k, model.info.num_classes)
        self.class_names = tf.constant(model.info.class_names)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def classify_bytes(self, image_bytes):
        """image_bytes: a batch of encoded JPEG/PNG/BMP/GIF images, each of any size."""
        images = tf.map_fn(lambda b: trained.preprocess_encoded(b, self.info, self._margin), image_bytes,
                           fn_output_signature=trained.input_spec(self.info, self._margin))
        return self._classify(images)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def classify_images(self, images):
        """images: a batch of uint8 RGB images of one (any) size."""
        inputs = tf.map_fn(lambda image: trained.preprocess_image(image, self.info, self._margin), images,
                           fn_output_signature=trained.input_spec(self.info, self._margin))
        return self._classify(inputs)

    @property
    def _margin(self):
        return self.tta == "flip+crops"

    def _classify(self, inputs):
        # An empty batch gets empty outputs (TF's convolutions pass a 0-image batch through unchanged).
        logits = tf.cond(tf.shape(inputs)[0] > 0,
                         lambda: steps.predict(self.net, inputs, self.tta, self.info.image_size),
                         lambda: tf.zeros([0, self.info.num_classes]))
        probabilities = tf.nn.softmax(logits)
        top = tf.math.top_k(probabilities, k=self.top_k)
        return {"probabilities": probabilities, "top_k_indices": top.indices, "top_k_probabilities": top.values,
                "top_k_class_names": tf.gather(self.class_names, top.indices)}


def export(model, export_dir, top_k=5, tta="none"):
    """Writes the SavedModel; returns its signatures' names."""
    classifier = Classifier(model, top_k, tta)
    signatures = {BYTES_SIGNATURE: classifier.classify_bytes.get_concrete_function(),
                  IMAGES_SIGNATURE: classifier.classify_images.get_concrete_function()}
    tf.saved_model.save(classifier, export_dir, signatures=signatures)
    return sorted(signatures)
