"""What a run's data is: one typed spec, checked once, written into the run (dataset.json's "spec") and read back
from it by export. Light: no TensorFlow, no image is opened here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

COLOR_MODES = ("grayscale", "rgb")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The data of a run.

    Args:
        dataset: a tfds image-classification dataset ("fashion_mnist" is read from Debian's IDX files when they are
            installed); ignored when `data_dir` is given.
        data_dir: a folder with one sub-folder of images per class (`kerascnn.data.folder`).
        test_dir: a folder with the same class folders, the test split of `data_dir`.
        image_size: (height, width) every image is resized to; None keeps the dataset's own size (a folder: its
            first image's).
        color_mode: "grayscale" or "rgb" for a folder (--color; images of the other kind are converted); None: grey
            only if every image is.
        validation_fraction: seeded share of the training images held out for validation, in [0, 0.5].
        test_fraction: seeded share held out as the test split of a folder without `test_dir` (or of a tfds dataset
            without a test split), in [0, 0.5].
        seed: seed of the splits, the statistics sample and `limit`'s subset.
        skip_bad: leave out image files that cannot be decoded instead of stopping.
        limit: at most this many images per split, a seeded class-balanced subset (smoke tests).

    Example:
        >>> spec = DataSpec(data_dir="photos", image_size=(96, 96)).check()
    """

    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    test_dir: str | None = None
    image_size: tuple[int, int] | None = None
    color_mode: str | None = None
    validation_fraction: float = 1 / 12
    test_fraction: float = 1 / 12
    seed: int = 0
    skip_bad: bool = False
    limit: int | None = None

    def __post_init__(self):
        if self.image_size is not None and isinstance(self.image_size, list):
            object.__setattr__(self, "image_size", tuple(self.image_size))

    def check(self, out: str | Path | None = None) -> DataSpec:
        """Returns the spec, or raises ValueError naming the flag and what it received.

        Args:
            out: the run folder, which must not lie inside `data_dir` or `test_dir` (it would become a class folder
                of the next training on that folder).
        """
        fractions = (("--validation-fraction", self.validation_fraction), ("--test-fraction", self.test_fraction))
        for flag, value in fractions:
            if not 0.0 <= value <= 0.5:
                raise ValueError(f"{flag} must be in [0, 0.5] (got {value}).")
        if self.image_size is not None and (
            len(self.image_size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in self.image_size)
        ):
            raise ValueError(f"--image-size must be two positive integers, HEIGHT WIDTH (got {list(self.image_size)}).")
        if self.color_mode is not None and self.color_mode not in COLOR_MODES:
            raise ValueError(f"--color must be grayscale or rgb (got {self.color_mode!r}).")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1 (got {self.limit}).")
        if self.color_mode is not None and self.data_dir is None:
            raise ValueError(f"--color {self.color_mode} converts an image folder's images: give --data-dir too.")
        if self.test_dir is not None and self.data_dir is None:
            raise ValueError("--test-dir is the test split of an image folder: give --data-dir too.")
        if out is not None:
            run = Path(out).resolve()
            for flag, folder in (("--data-dir", self.data_dir), ("--test-dir", self.test_dir)):
                if folder is not None and run.is_relative_to(Path(folder).resolve()):
                    raise ValueError(
                        f"--out {out} is inside {flag} {folder}: the run folder would become a class of the next "
                        f"training on it. Choose an --out outside {folder}."
                    )
        return self

    @classmethod
    def from_settings(cls, settings: dict) -> DataSpec:
        """The spec of a TrainConfig's fields (or of a run's config.yaml, where keys an older version lacked take the
        defaults)."""
        defaults = cls()
        return cls(
            dataset=settings.get("dataset", defaults.dataset),
            data_dir=settings.get("data_dir"),
            test_dir=settings.get("test_dir"),
            image_size=tuple(settings["image_size"]) if settings.get("image_size") else None,
            color_mode=settings.get("color_mode"),
            validation_fraction=settings.get("validation_fraction", defaults.validation_fraction),
            test_fraction=settings.get("test_fraction", defaults.test_fraction),
            seed=settings.get("seed", defaults.seed),
            skip_bad=settings.get("skip_bad_images", False),
            limit=settings.get("limit"),
        )

    def to_json(self) -> dict:
        """dataset.json's "spec": every field, JSON-ready."""
        values = dataclasses.asdict(self)
        values["image_size"] = list(self.image_size) if self.image_size else None
        return values

    @classmethod
    def from_run(cls, dataset_meta: dict, config: dict) -> DataSpec:
        """The spec a run recorded in dataset.json, or, for a run written before the spec existed, the one its
        config.yaml implies."""
        if "spec" in dataset_meta:
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in dataset_meta["spec"].items() if k in known})
        return cls.from_settings(config)
