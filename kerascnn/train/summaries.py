"""TensorBoard images written each epoch: the validation confusion matrix, a grid of misclassified
validation images, and class activation maps from the GAP head for a few fixed images."""

from __future__ import annotations

import io

import keras
import numpy as np

from kerascnn.models import head_features


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def class_activation_maps(network: keras.Model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(maps of the predicted class upsampled to the image size, predicted classes). The GAP head's class
    maps are per-class confidence maps: their spatial mean is the class score."""
    head, features = head_features(network)  # raises ValueError without a (single) GAP head
    maps = keras.ops.convert_to_numpy(head.class_maps(features(images, training=False))).astype(np.float32)
    predicted = maps.mean(axis=(1, 2)).argmax(axis=1)
    chosen = maps[np.arange(len(images)), :, :, predicted]  # (N, h, w)
    height, width = images.shape[1:3]
    rows = np.arange(height) * chosen.shape[1] // height
    cols = np.arange(width) * chosen.shape[2] // width
    return chosen[:, rows][:, :, cols], predicted


def _subplots(rows: int, columns: int, figsize):
    """A figure outside pyplot (no global backend switch, nothing to close: a notebook's plots stay inline)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    return figure, figure.subplots(rows, columns, squeeze=False)


def _figure_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return buffer.getvalue()


def _show(axis, image, title):
    axis.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
    axis.set_title(title, fontsize=7)
    axis.axis("off")


class ImageSummaries(keras.callbacks.Callback):
    """Writes the three image summaries into `log_dir` after every epoch (TensorFlow needed). Class
    activation maps need a GAP head; models without one (lenet5) get the other two. `x_val`: the normalized
    validation images, read 512 at a time (an array or `kerascnn.data.pipeline.NormalizedImages`); `raw_val`: their
    pixels, shown."""

    def __init__(self, log_dir, network, x_val, y_val, raw_val, labels, num_fixed=8, max_misclassified=16):
        super().__init__()
        import tensorflow as tf

        self.tf = tf
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self.network, self.x_val, self.y_val, self.raw_val = network, x_val, y_val, raw_val
        self.labels, self.num_fixed, self.max_misclassified = labels, num_fixed, max_misclassified
        try:
            head_features(network)
            self.has_gap_head = True
        except ValueError:
            self.has_gap_head = False

    def on_epoch_end(self, epoch, logs=None):
        predicted = np.concatenate(
            [
                keras.ops.convert_to_numpy(self.network.predict_on_batch(self.x_val[start : start + 512])).argmax(-1)
                for start in range(0, len(self.x_val), 512)
            ]
        )
        images = {
            "confusion_matrix": self._confusion_png(predicted, epoch),
            "misclassified": self._misclassified_png(predicted),
        }
        if self.has_gap_head:
            images["class_activation_maps"] = self._cam_png()
        tf = self.tf
        with self.writer.as_default(step=epoch):
            for name, png in images.items():
                tf.summary.image(name, tf.image.decode_png(png, channels=4)[None], step=epoch)
        self.writer.flush()

    def _confusion_png(self, predicted, epoch) -> bytes:
        counts = confusion_matrix(self.y_val, predicted, len(self.labels))
        figure, axes = _subplots(1, 1, (6, 5))
        axis = axes[0, 0]
        axis.imshow(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
        axis.set_xticks(range(len(self.labels)), self.labels, rotation=90, fontsize=7)
        axis.set_yticks(range(len(self.labels)), self.labels, fontsize=7)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        for (i, j), count in np.ndenumerate(counts):
            axis.text(j, i, str(count), ha="center", va="center", fontsize=6)
        axis.set_title(f"validation confusion matrix, epoch {epoch + 1}")
        return _figure_png(figure)

    def _misclassified_png(self, predicted) -> bytes:
        wrong = np.flatnonzero(predicted != self.y_val)[: self.max_misclassified]
        columns, rows = 8, max(1, -(-len(wrong) // 8))
        figure, axes = _subplots(rows, columns, (columns * 1.3, rows * 1.6))
        for axis in axes.flat:
            axis.axis("off")
        for axis, index in zip(axes.flat, wrong):
            title = f"{self.labels[predicted[index]]}\n(true {self.labels[self.y_val[index]]})"
            _show(axis, self.raw_val[index], title)
        return _figure_png(figure)

    def _cam_png(self) -> bytes:
        """Top row: the fixed images with their labels; bottom: the predicted class's map over each."""
        maps, predicted = class_activation_maps(self.network, self.x_val[: self.num_fixed])
        figure, axes = _subplots(2, len(maps), (len(maps) * 1.3, 3))
        for column, class_map in enumerate(maps):
            _show(axes[0, column], self.raw_val[column], self.labels[self.y_val[column]])
            axes[1, column].imshow(self.raw_val[column].mean(axis=-1), cmap="gray")
            axes[1, column].imshow(class_map, cmap="jet", alpha=0.5)
            axes[1, column].set_title(f"map: {self.labels[predicted[column]]}", fontsize=7)
            axes[1, column].axis("off")
        return _figure_png(figure)
