"""kerascnn's mobilenetv2 against torchvision's MobileNetV2: the same function once its state dict is loaded.

The reference is a small torch.nn MobileNetV2 with torchvision's module layout, so its state dict has torchvision's
names (torchvision's own wheel does not import beside this project's CPU torch). The real ImageNet file and 20
ImageNet photos come from scripts/setup-weights; without them those tests skip and name it.
"""

import pickle
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kerascnn import models
from kerascnn.models import torch_weights
from kerascnn.models.registry import OptionError

torch = pytest.importorskip("torch")
nn = torch.nn

ROOT = Path(__file__).resolve().parents[2]
IMAGENET_PTH = ROOT / ".weights" / torch_weights.IMAGENET_PTH
PHOTOS = sorted((ROOT / ".weights" / "foolbox").glob("imagenet_*.jpg"))
needs_real_file = pytest.mark.skipif(
    not IMAGENET_PTH.is_file() or len(PHOTOS) != 20,
    reason=f"the ImageNet MobileNetV2 and the foolbox photos are not installed: run {torch_weights.INSTALL_PTH}",
)


class ConvBNReLU(nn.Sequential):
    """torchvision's Conv2dNormActivation: children 0 (conv), 1 (batch norm), 2 (ReLU6)."""

    def __init__(self, inputs, outputs, kernel_size=3, stride=1, groups=1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(inputs, outputs, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inputs, outputs, stride, expansion):
        super().__init__()
        hidden = int(round(inputs * expansion))
        layers = [ConvBNReLU(inputs, hidden, 1)] if expansion != 1 else []
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, outputs, 1, bias=False),
            nn.BatchNorm2d(outputs),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class TorchMobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2(width_mult=1.0): `features` 0-18 and `classifier` (dropout, linear)."""

    def __init__(self, num_classes=1000):
        super().__init__()
        features, channels = [ConvBNReLU(3, 32, stride=2)], 32
        for expansion, outputs, repeats, stride in models.mobilenetv2.STAGES:
            for index in range(repeats):
                features.append(InvertedResidual(channels, outputs, stride if index == 0 else 1, expansion))
                channels = outputs
        features.append(ConvBNReLU(channels, 1280, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


def random_state_dict(path, seed=0):
    """A TorchMobileNetV2 with random weights and random BN statistics (running mean and variance too, so a mix-up
    of BN's four arrays or the wrong epsilon shows), saved to `path` as a state dict; returns the network."""
    torch.manual_seed(seed)
    reference = TorchMobileNetV2().eval()
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.3)
                module.running_mean.normal_(0, 0.3)
                # small variances make epsilon matter: 1e-3 instead of 1e-5 moves the logits well beyond 1e-4
                module.running_var.uniform_(0.002, 2.0)
        reference.classifier[1].bias.normal_(0, 0.5)
    torch.save(reference.state_dict(), path)
    return reference


def logits(model, x):
    """The pre-softmax outputs of kerascnn's model: the features' spatial mean through the head's 1x1 kernel."""
    head, features = models.head_features(model)
    pooled = keras.ops.convert_to_numpy(features(x, training=False)).mean(axis=(1, 2))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (head.classifier.kernel, head.classifier.bias))
    return pooled @ kernel[0, 0] + bias


def torch_logits(reference, x):
    with torch.no_grad():
        return reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()


@pytest.fixture(scope="module")
def random_pth(tmp_path_factory):
    path = tmp_path_factory.mktemp("torch_weights") / "random_mobilenetv2.pth"
    return path, random_state_dict(path)


@pytest.mark.parametrize("size", [224, 96, 97])
def test_a_random_state_dict_computes_torchvisions_function(random_pth, size):
    """Within 1e-4 of torch's logits at 224 and two smaller sizes, one odd (where torch's padding is "same")."""
    path, reference = random_pth
    model = models.create("mobilenetv2", (size, size, 3), 1000, weights=str(path))
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert model.count_params() == sum(v.numel() for v in state.values()) == 3_538_984  # BN statistics included
    x = np.random.default_rng(size).normal(0, 1, (2, size, size, 3)).astype("float32")
    expected, got = torch_logits(reference, x), logits(model, x)
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, np.abs(expected).max()))
    assert np.abs(expected).std() > 0.1  # the signal survives the 52 layers: the comparison means something
    probabilities = torch.softmax(torch.from_numpy(expected), 1).numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), probabilities, atol=1e-5)


def test_another_number_of_classes_takes_the_backbone_only(random_pth):
    path, reference = random_pth
    model = models.create("mobilenetv2", (64, 64, 3), 5, weights=str(path))
    x = np.random.default_rng(0).normal(0, 1, (1, 64, 64, 3)).astype("float32")
    with torch.no_grad():
        expected = reference.features(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    got = keras.ops.convert_to_numpy(models.head_features(model)[1](x))
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, np.abs(expected).max()))


class Payload:
    """A pickle that runs code when loaded (what a hostile .pth does): it would create `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_file_with_anything_but_tensors_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "hostile.pth"
    path.write_bytes(pickle.dumps({"features.0.0.weight": Payload(marker)}))
    with pytest.raises(OptionError, match="refused and not executed"):
        models.create("mobilenetv2", (32, 32, 3), 10, weights=str(path))
    assert not marker.exists()
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(OptionError, match="not a state dict"):
        models.create("mobilenetv2", (32, 32, 3), 10, weights=str(tmp_path / "list.pth"))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(OptionError, match="no tensor 'features.0.0.weight'"):
        models.create("mobilenetv2", (32, 32, 3), 10, weights=str(tmp_path / "other.pth"))


def test_refusals_name_the_fix(random_pth, monkeypatch, tmp_path):
    path, _ = random_pth
    with pytest.raises(OptionError, match="no such file.*setup-weights"):
        models.create("mobilenetv2", (32, 32, 3), 10, weights=str(tmp_path / "missing.pth"))
    with pytest.raises(OptionError, match="RGB"):
        models.create("mobilenetv2", (32, 32, 1), 10, weights=str(path))
    with pytest.raises(OptionError, match="Conv1.*shape"):
        models.create("mobilenetv2", (32, 32, 3), 10, alpha=0.5, weights=str(path))
    with pytest.raises(OptionError, match="layout='torchvision'"):
        models.create("mobilenetv2", (32, 32, 3), 10, weights=str(path), layout="keras")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(OptionError, match=r"needs torch: pip install 'kerascnn\[torch-weights\]'") as error:
        models.create("mobilenetv2", (32, 32, 3), 10, weights=str(path))
    assert "\n" not in str(error.value)


@needs_real_file
def test_the_imagenet_file_agrees_with_torch_on_20_imagenet_photos():
    """torchvision's ImageNet MobileNetV2: kerascnn's top-1 equals the torch reference's on every one of foolbox's 20
    labelled ImageNet validation photos, 18 of them right."""

    x, labels = imagenet_photos()
    reference = TorchMobileNetV2().eval()
    reference.load_state_dict(torch.load(IMAGENET_PTH, map_location="cpu", weights_only=True))
    model = models.create("mobilenetv2", (224, 224, 3), 1000, weights=str(IMAGENET_PTH))
    expected, got = torch_logits(reference, x), logits(model, x)
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(got, expected, atol=1e-3 * np.abs(expected).max())
    assert int((got.argmax(1) == labels).sum()) == 18


def imagenet_photos():
    """foolbox's 20 ImageNet photos normalized as torchvision's, and their labels."""
    from PIL import Image

    # foolbox stores them at several sizes: squashed to 224x224, the same pixels for both networks
    images = [Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR) for p in PHOTOS]
    pixels = np.stack([np.asarray(image, np.float32) for image in images])
    labels = np.array([int(p.stem.split("_")[2]) for p in PHOTOS])
    norm = torch_weights.TORCHVISION_NORMALIZATION
    x = ((pixels - np.float32(norm["mean"])) / np.float32(norm["std"])).astype("float32")
    return x, labels


@needs_real_file
def test_the_imagenet_file_exports_and_agrees_with_keras():
    """float32, int8 and uint8 TFLite files of the ImageNet network at 224x224 pass the op audit and give Keras's
    top-1 on the 20 photos (float32; int8 and uint8 on most). torch's padding is not "same" at the five stride-2 3x3
    convolutions on even sizes
    (224, 112, 56, 28, 14): five PADs, and none elsewhere."""
    from kerascnn.export.audit import audit, op_counts
    from kerascnn.export.converter import convert
    from kerascnn.export.runner import TFLiteClassifier

    x, _ = imagenet_photos()
    model = models.create("mobilenetv2", (224, 224, 3), 1000, weights=str(IMAGENET_PTH))
    expected = keras.ops.convert_to_numpy(model(x)).argmax(1)
    for quant in ("float32", "int8", "uint8"):
        tflite = convert(model, quant, x)
        audit(tflite, quant)
        assert op_counts(tflite).get("PAD", 0) == 5, quant
        agree = (TFLiteClassifier(tflite).predict(x).argmax(1) == expected).sum()
        # post-training int8 calibrated on these 20 photos: 17/20 top-1 agreements measured for int8 (1,000 close
        # classes); float32 all 20
        assert agree >= (20 if quant == "float32" else 16), (quant, agree)


def test_the_pth_normalization_is_torchvisions(random_pth):
    """--weights x.pth: the run normalizes as torchvision did (the CLI's copy of the numbers, which it keeps free of
    Keras, equals the models'), and the run is labelled with where the weights came from."""
    from kerascnn.train import finetune

    for key in ("mean", "std"):
        np.testing.assert_allclose(
            finetune.TORCHVISION_NORMALIZATION[key], torch_weights.TORCHVISION_NORMALIZATION[key], rtol=1e-12
        )
    source = finetune.weight_source(None, str(random_pth[0]), "mobilenetv2")
    assert source.normalization == finetune.TORCHVISION_NORMALIZATION
    assert source.description.startswith("torchvision weights")
