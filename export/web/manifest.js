// Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
// The manifest's validation for the page: the twin of export/kerascnn_edge/manifest.py's Manifest.from_dict, rule
// for rule and field name for field name (tests/edge/test_manifest.py runs both on the same bad manifests).
// JSON cannot tell 28 from 28.0 once parsed, so a float-typed integer in input.shape, which Python refuses, passes
// here; every other rule is the same.

export class ManifestError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;  // the dotted name of the first field that breaks a rule, e.g. "input.shape"
  }
}

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);
const isNumber = (value) => typeof value === 'number' && Number.isFinite(value);
const show = (value) => JSON.stringify(value)?.slice(0, 80);

function get(data, dotted) {
  let value = data;
  for (const key of dotted.split('.')) {
    if (!isObject(value) || !Object.prototype.hasOwnProperty.call(value, key)) {
      throw new ManifestError(dotted, `${dotted} is missing`);
    }
    value = value[key];
  }
  return value;
}

function numbers(data, dotted, channels, positive = false) {
  const values = get(data, dotted);
  const count = channels === 1 ? '1 number' : `1 or ${channels} numbers`;
  if (!Array.isArray(values) || ![1, channels].includes(values.length) || !values.every(isNumber)) {
    throw new ManifestError(dotted, `${dotted} must be a list of ${count}, got ${show(values)}`);
  }
  if (positive && Math.min(...values) <= 0) {
    throw new ManifestError(dotted, `${dotted} must be > 0 (it divides), got ${show(values)}`);
  }
  return values;
}

// The checked manifest's {labels, shape, mean, std, color}; throws ManifestError naming the first bad field.
export function checkManifest(data) {
  if (!isObject(data)) throw new ManifestError('', `a manifest is a JSON object, got ${show(data)}`);
  const labels = get(data, 'labels');
  if (!Array.isArray(labels) || !labels.length || !labels.every((label) => typeof label === 'string')) {
    throw new ManifestError('labels', `labels must be a list of names, got ${show(labels)}`);
  }
  const shape = get(data, 'input.shape');
  if (!Array.isArray(shape) || shape.length !== 4 || shape[0] !== 1 ||
      !shape.every((n) => Number.isInteger(n) && n > 0) || ![1, 3].includes(shape[3])) {
    throw new ManifestError('input.shape',
                            `input.shape must be [1, height, width, channels] with 1 or 3 channels, got ${show(shape)}`);
  }
  const mean = numbers(data, 'input.normalization.mean', shape[3]);
  const std = numbers(data, 'input.normalization.std', shape[3], true);
  const color = data.input.color ?? null;
  if (color !== null && !['rgb', 'grey'].includes(color)) {
    throw new ManifestError('input.color', `input.color must be one of rgb, grey, got ${show(color)}`);
  }
  return {labels, shape, mean, std, color};
}
