"""The one protocol of a data source (`Source`): what a reader lists and how it decodes one item, nothing more.

Owners: a source (`folder.FolderSource`, `idx.IdxSource`, `tfds_source.TfdsSource`) lists and decodes;
`kerascnn.data.stream` picks the source a `DataSpec` names and does, once for every source, the validation/test
split, `limit`, the in-memory or streamed decision, the statistics and the replay of a recorded run;
`kerascnn.data.pipeline` turns the splits into `tf.data` batches.
"""

from __future__ import annotations

import dataclasses

from kerascnn.data.pipeline import Split


@dataclasses.dataclass
class Listing:
    """A source's items, listed without decoding: `train` and `test` `Split`s (`test` None when the source has no
    test split: the pipeline then holds one out of `train`), each listing its items (`source()`, `files`, `labels`)
    and decoding one (`decode`: item -> (uint8 image `input_shape`, int64 label)). `skipped` are files left out as
    unreadable, `facts` what the run records so that export can tell whether the data changed."""

    classes: list[str]
    input_shape: tuple[int, int, int]
    train: Split
    test: Split | None
    skipped: list[str] = dataclasses.field(default_factory=list)
    facts: dict = dataclasses.field(default_factory=dict)


class Source:
    """A dataset as a reader sees it. A subclass sets `name` (dataset.json's "dataset"), `where` (for messages),
    `test_name` (its own test split, in words) and `held_out_from` (what a held-out test split is cut from), and
    implements `list`. It never splits, limits, caches, computes statistics or reads a run's dataset.json."""

    name: str
    where: str
    test_name: str = "the test split"
    held_out_from: str = "the training split"

    def list(self, input_shape: tuple[int, int, int] | None = None, skipped: list[str] | None = None) -> Listing:
        """The source's `Listing`. A replay passes the `input_shape` and `skipped` files a run recorded: they are
        taken as they are, and no file is checked for them (sources whose shape comes from a header ignore them)."""
        raise NotImplementedError

    def check_left(self, classes: list[str], labels) -> None:
        """Raises when leaving out undecodable files (`skip_bad`) emptied a class; `labels` those of the training and
        validation items left. Only files can be undecodable: the default checks nothing."""
