"""tfds image-classification datasets as a `Source` (`TfdsSource`), streamed example by example. The one place
that sets tfds up (import, prepare, offline probe) and says what to do when it cannot."""

from __future__ import annotations

import numpy as np

from kerascnn.data.idx import DEBIAN_FASHION_MNIST
from kerascnn.data.pipeline import Split
from kerascnn.data.source import Listing, Source

TFDS_PROBE_HOST = "storage.googleapis.com"  # tfds reads dataset metadata and many datasets from Google Cloud Storage


def online(host: str = TFDS_PROBE_HOST, port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to `host:port` opens within `timeout` seconds, the DNS lookup included (it runs in
    a daemon thread, so a resolver that hangs offline cannot stall the caller)."""
    import socket
    import threading

    result = []

    def connect():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


def hint(name: str) -> str:
    """What to do when dataset `name` cannot be loaded."""
    if name != "fashion_mnist":
        return (
            ". Check the name (tfds.list_builders()) and that this machine is online; or train on your own "
            "images with --data-dir."
        )
    return (
        f". Fashion-MNIST offline: `apt-get install dataset-fashion-mnist` (IDX files in "
        f"{DEBIAN_FASHION_MNIST}, or set KERASCNN_FASHION_MNIST_DIR); online: tfds downloads it."
    )


def prepared_builder(name: str, data_dir: str | None = None):
    """tfds's builder of `name`, prepared (downloaded when this machine is online).

    Raises:
        RuntimeError: tensorflow-datasets missing, offline without the data, an unknown name (with `hint`).
        ValueError: not an image-classification dataset.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise RuntimeError(
            f"Dataset {name!r} needs tensorflow-datasets, which is not installed here" + hint(name)
        ) from error
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            if not online():  # tfds would retry for minutes before failing
                raise RuntimeError(
                    f"this machine cannot reach {TFDS_PROBE_HOST}, and {name!r} is not in {builder.data_dir}"
                )
            print(f"Downloading {name!r} with tensorflow-datasets into {builder.data_dir} (needs internet)", flush=True)
        builder.download_and_prepare()
    except Exception as error:  # offline, unknown name, ...: tfds raises many kinds
        raise RuntimeError(f"Cannot load dataset {name!r} with tensorflow-datasets: {error}" + hint(name)) from error
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise ValueError(
            f"tfds dataset {name!r} is not an image-classification dataset (it needs 'image' and 'label' features)."
        )
    return builder


def native_size_bytes(name: str) -> int | None:
    """Decoded bytes of a prepared tfds dataset's training split, from tfds's metadata without reading an image; None
    when unknown (images of varying size, not prepared, tfds missing)."""
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(name)
        shape = builder.info.features["image"].shape
        count = builder.info.splits["train"].num_examples
    except Exception:  # not installed, unknown, not prepared: tfds raises many kinds
        return None
    return None if None in shape else count * int(np.prod(shape))


class TfdsSource(Source):
    """A prepared tfds image-classification dataset, streamed example by example (not `batch_size=-1`).

    Images keep the dataset's size unless `image_size` is given; a dataset of varying sizes needs it (or takes the
    first image's). Its "test" split is the test split; without one the pipeline holds one out of "train".

    Raises (from `list`):
        RuntimeError, ValueError: see `prepared_builder`.
    """

    def __init__(self, name: str, *, image_size=None, data_dir: str | None = None):
        self.name, self.image_size, self.data_dir = name, image_size, data_dir
        self.where, self.test_name = f"tfds dataset {name!r}", f"the {name} test split"

    def list(self, input_shape=None, skipped=None) -> Listing:
        """Prepares the dataset (`prepared_builder`); the input shape comes from its metadata (a replay's is the
        same)."""
        from kerascnn.data.images import resize

        builder = prepared_builder(self.name, self.data_dir)
        height, width, channels = builder.info.features["image"].shape
        own_size = None if height is None or width is None else (height, width)
        image_size = self.image_size
        if image_size is None and own_size is None:
            first = next(iter(builder.as_dataset(split="train", as_supervised=True).take(1)))[0]
            image_size = tuple(int(v) for v in first.shape[:2])
        image_size = tuple(image_size or own_size)

        def make(split):
            def source():
                return builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)

            def decode(image, label):
                import tensorflow as tf

                return (image if image_size == own_size else resize(image, image_size)), tf.cast(label, tf.int64)

            try:
                count = builder.info.splits[split].num_examples
            except KeyError:  # split sizes not recorded (mocked builders): count the examples once
                count = int(source().reduce(0, lambda n, _: n + 1))
            return Split(count, source, decode)

        try:
            names = set(builder.info.splits.keys())
        except KeyError:
            names = set()
        test = make("test") if "test" in names else None
        classes = list(builder.info.features["label"].names)
        return Listing(classes, (*image_size, channels), make("train"), test)
