"""Each setting declared once (kerascnn/settings.py): the rules that used to be lists are read from the fields'
roles, the data settings are DataSpec's, and a setting's error names the argument in the library and the flag on
the command line."""

import dataclasses

import pytest

from kerascnn import cli, settings
from kerascnn.data.spec import DataSpec
from kerascnn.export.config import ExportConfig
from kerascnn.settings import SettingError
from kerascnn.train import config
from kerascnn.train.config import TrainConfig, resolve


def test_the_roles_give_the_lists_they_replaced():
    assert config.RESUME_MAY_CHANGE == {
        *("epochs", "early_stopping", "tensorboard", "out", "preset", "resume", "overwrite", "coordinator"),
        *("process_id", "startup_timeout", "checkpoint_every", "tta_flip", "compile_cache", "steps_per_execution"),
    }
    assert config.PER_PROCESS_SETTINGS == {"coordinator", "process_id", "startup_timeout", "out", "overwrite"}
    assert config.LAUNCH_ONLY == {"resume", "coordinator", "process_id", "startup_timeout"}
    assert config.DATA_FOLDERS == ("data_dir", "test_dir")
    assert "resume" not in config.to_yaml(resolve({})) and "overwrite:" not in config.to_yaml(resolve({}))


def test_the_data_settings_are_declared_once_in_the_data_spec():
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for spec_field in dataclasses.fields(DataSpec):
        if not spec_field.metadata:
            continue  # seed: TrainConfig's
        name = spec_field.metadata["key"] or spec_field.name
        assert fields[name].default == spec_field.default and fields[name].metadata == spec_field.metadata, name
    spec = DataSpec.from_settings(dataclasses.asdict(resolve(dict(skip_bad_images=True, limit=5))))
    assert (spec.skip_bad, spec.limit, spec.validation_fraction) == (True, 5, 1 / 12)


@pytest.mark.parametrize(
    "values, library, command_line",
    [
        (dict(validation_fraction=0.7), "validation_fraction must be in [0, 0.5] (got 0.7)", "--validation-fraction"),
        (
            dict(init_from="RUN", epochs=1, freeze_epochs=2),
            "freeze_epochs=2 is more than epochs=1",
            "--freeze-epochs 2",
        ),
        (dict(color_mode="rgb"), "color_mode='rgb' converts", "--color rgb converts"),
    ],
)
def test_a_setting_error_names_the_argument_and_the_command_line_its_flag(values, library, command_line):
    with pytest.raises(SettingError) as caught:
        resolve(values)
    assert library in str(caught.value) and "--" not in str(caught.value)
    assert command_line in cli.one_line(caught.value)


def test_an_unknown_role_is_refused():
    with pytest.raises(ValueError, match="Unknown setting roles"):
        settings.setting(1, roles=("resumeable",))


@pytest.mark.parametrize("cls", [TrainConfig, ExportConfig], ids=lambda cls: cls.__name__)
def test_the_api_reference_lists_each_setting_once_with_its_help(cls):
    """`settings.document` writes the fields' help into the docstring: no second list of the fields to keep up."""
    attributes = cls.__doc__.split("\nAttributes:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split(":", 1)[0].split(" (")[0].strip() for line in attributes] == [
        f.name for f in dataclasses.fields(cls)
    ]
    for line, field in zip(attributes, dataclasses.fields(cls)):
        assert line.split(": ", 1)[1] == " ".join(settings._help(field).split()), field.name
