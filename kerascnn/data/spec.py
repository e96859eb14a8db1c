"""What a run's data is: one typed spec, checked once, written into the run (dataset.json's "spec") and read back
from it by export. Light: no TensorFlow, no image is opened here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kerascnn.settings import FOLDER, SettingError, setting

COLOR_MODES = ("grayscale", "rgb")


def check_fractions(validation_fraction: float, test_fraction: float) -> None:
    """Raises SettingError unless each share of a dataset held out is in [0, 0.5]."""
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value <= 0.5:
            raise SettingError(
                DataSpec, f"{{{name}:name}} must be in [0, 0.5] (got {{{name}:value}}).", **{name: value}
            )


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The data of a run. Each field is a setting (`kerascnn.settings`): its help below is its documentation and the
    training command line's flag, and TrainConfig takes the data settings from here.

    Example:
        >>> spec = DataSpec(data_dir="photos", image_size=(96, 96)).check()
    """

    dataset: str = setting(
        "fashion_mnist",
        help="tfds dataset name",
        show_default=True,
        group="data",
    )
    data_dir: str | None = setting(
        help="folder with one sub-folder of images per class, instead of --dataset (default: none)",
        group="data",
        roles=(FOLDER,),
        default=None,
    )
    test_dir: str | None = setting(
        help="folder with the same class sub-folders, the test split of --data-dir (default: a seeded "
        "--test-fraction of --data-dir, held out and never used to pick the best epoch)",
        group="data",
        roles=(FOLDER,),
        default=None,
    )
    image_size: tuple[int, int] | None = setting(
        None,
        help="resize every image to this size, upright by its EXIF orientation, with an antialiased bilinear filter "
        "(default: the dataset's own size, or a folder's first image's)",
        group="data",
        type=int,
        nargs=2,
        metavar=("HEIGHT", "WIDTH"),
    )
    color_mode: str | None = setting(
        None,
        help="an image folder's colour: grayscale (1 channel) or rgb (3), converting the images that differ as "
        "Pillow does, e.g. to fine-tune a run of the other kind (default: grayscale only if every image is)",
        flag="--color",
        group="data",
        choices=list(COLOR_MODES),
    )
    validation_fraction: float = setting(
        1 / 12,
        help="seeded share of the training images held out for validation, in [0, 0.5]",
        show_default=True,
        group="data",
        type=float,
    )
    test_fraction: float = setting(
        1 / 12,
        help="seeded share of --data-dir held out as the test split, in [0, 0.5]",
        show_default=True,
        group="data",
        type=float,
    )
    seed: int = 0  # the run's seed (TrainConfig.seed): of the splits, the statistics sample and `limit`'s subset
    skip_bad: bool = setting(
        False,
        help="leave out image files that cannot be decoded and report how many; every file is then decoded "
        "once before training (default: stop with their names)",
        flag="--skip-bad-images",
        key="skip_bad_images",
        group="data",
        action="store_const",
        const=True,
    )
    limit: int | None = setting(
        None,
        help="use only a seeded, class-balanced N images of each split (smoke tests; accuracy is then "
        "meaningless; default: all)",
        group="data",
        type=int,
    )

    def __post_init__(self):
        if self.image_size is not None and isinstance(self.image_size, list):
            object.__setattr__(self, "image_size", tuple(self.image_size))

    def check(self, out: str | Path | None = None) -> DataSpec:
        """Returns the spec, or raises SettingError naming the setting and what it received.

        Args:
            out: the run folder, which must not lie inside `data_dir` or `test_dir` (it would become a class folder
                of the next training on that folder).
        """
        check_fractions(self.validation_fraction, self.test_fraction)
        if self.image_size is not None and (
            len(self.image_size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in self.image_size)
        ):
            raise SettingError(
                DataSpec,
                "{image_size:name} must be two positive integers, HEIGHT WIDTH (got {image_size:value}).",
                image_size=list(self.image_size),
            )
        if self.color_mode is not None and self.color_mode not in COLOR_MODES:
            raise SettingError(
                DataSpec,
                "{color_mode:name} must be grayscale or rgb (got {color_mode:value}).",
                color_mode=self.color_mode,
            )
        if self.limit is not None and self.limit < 1:
            raise SettingError(DataSpec, "{limit:name} must be >= 1 (got {limit:value}).", limit=self.limit)
        if self.color_mode is not None and self.data_dir is None:
            raise SettingError(
                DataSpec,
                "{color_mode} converts an image folder's images: give {data_dir:name} too.",
                color_mode=self.color_mode,
                data_dir=None,
            )
        if self.test_dir is not None and self.data_dir is None:
            raise SettingError(
                DataSpec,
                "{test_dir:name} is the test split of an image folder: give {data_dir:name} too.",
                test_dir=self.test_dir,
                data_dir=None,
            )
        if out is not None:
            run = Path(out).resolve()
            for name in ("data_dir", "test_dir"):
                folder = getattr(self, name)
                if folder is not None and run.is_relative_to(Path(folder).resolve()):
                    raise SettingError(
                        DataSpec,
                        "{out} is inside {" + name + "}: the run folder would become a class of the next training on "
                        "it. Choose an {out:name} outside {" + name + ":name}.",
                        out=str(out),
                        **{name: folder},
                    )
        return self

    @classmethod
    def from_settings(cls, settings: dict) -> DataSpec:
        """The spec of a TrainConfig's fields (or of a run's config.yaml, where keys an older version lacked take the
        defaults)."""
        keys = {f.name: f.metadata.get("key") or f.name for f in dataclasses.fields(cls)}
        return cls(**{name: settings[key] for name, key in keys.items() if settings.get(key) is not None})

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
