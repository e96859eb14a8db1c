// Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
// Classify an image in the browser with a kerascnn .tflite model and MediaPipe Tasks for Web (ImageClassifier).
//
// Everything is served from this machine: the model (?model=PATH, relative to this page; default the shipped
// uint8 model), its manifest beside it (PATH with .json: the input size), MediaPipe's WebAssembly from
// node_modules (`npm ci` here), and the bundled test images (samples.png, a 10 x 10 sprite of 28 x 28 cells).
// The model carries its own TFLite metadata (labels, normalization mean/std), which MediaPipe reads: for a float
// input it feeds (pixel - mean) / std, for a uint8 input the pixels 0..255 themselves.
// The page prepares every image as training and predict.py do: upright by its EXIF orientation (createImageBitmap's
// imageOrientation 'from-image'), resized to the model's input size with Pillow's bilinear filter (resizeBilinear),
// so MediaPipe's own resize never runs (tests/export/test_web.py holds the pixels within a grey level of predict.py).
//
// ?selftest=N classifies the first N bundled test images, writes "selftest: K/N correct" into #selftest and the
// per-image results into window.selftestResults and #selftest-json.

import {FilesetResolver, ImageClassifier} from './node_modules/@mediapipe/tasks-vision/vision_bundle.mjs';
import {checkManifest} from './manifest.js';

const WASM = './node_modules/@mediapipe/tasks-vision/wasm';
const DEFAULT_MODEL = '../fashion_mnist/vgg_uint8.tflite';
const SHOWN_SAMPLES = 12;
const $ = (id) => document.getElementById(id);

// The model's input size [height, width] from its manifest, or null without one (then MediaPipe resizes the image
// itself); a manifest that breaks a rule (checkManifest, the twin of the Python side's) is an error naming the field.
async function inputSize(modelPath) {
  const manifestPath = modelPath.replace(/\.tflite$/, '.json');
  let data;
  try {
    const response = await fetch(manifestPath);
    if (!response.ok) return null;
    data = await response.json();
  } catch {
    return null;
  }
  try {
    const {shape} = checkManifest(data);
    return [shape[1], shape[2]];
  } catch (error) {
    throw new Error(`${manifestPath} is not a kerascnn manifest (${error.message}): use the .json exported with ` +
                    'the model, or remove it.');
  }
}

async function loadClassifier(modelPath) {
  const response = await fetch(modelPath);
  if (!response.ok) throw new Error(`${modelPath}: HTTP ${response.status}. Pass ?model=PATH (relative to this page).`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const fileset = await FilesetResolver.forVisionTasks(WASM);
  try {
    const classifier = await ImageClassifier.createFromOptions(fileset, {
      baseOptions: {modelAssetBuffer: bytes, delegate: 'CPU'}, runningMode: 'IMAGE', maxResults: 3});
    return {classifier, bytes: bytes.length};
  } catch (error) {
    const reason = String(error.message || error).split(/;|\n/)[0];  // drop MediaPipe's source-location trace
    throw new Error(`MediaPipe cannot use ${modelPath} (${reason}). It must be a .tflite with TFLite metadata ` +
                    '(labels, normalization) and a 3-channel input: use a model exported with its metadata.');
  }
}

// Pillow's bilinear filter (Image.BILINEAR), which training matches (tf.image.resize, antialias=True): separable,
// each output pixel a weighted mean of the input pixels under a triangle of half-width max(scale, 1) around its
// centre, so shrinking averages every pixel (antialiased) and enlarging interpolates between neighbours.
function filterWeights(inSize, outSize) {
  const scale = inSize / outSize;
  const width = Math.max(scale, 1);
  return Array.from({length: outSize}, (_, i) => {
    const centre = (i + 0.5) * scale;
    const first = Math.max(Math.floor(centre - width + 0.5), 0);
    const last = Math.min(Math.floor(centre + width + 0.5), inSize);
    const weights = [];
    for (let k = first; k < last; k++) weights.push(Math.max(0, 1 - Math.abs((k - centre + 0.5) / width)));
    const total = weights.reduce((a, b) => a + b, 0);
    return {first, weights: weights.map((w) => w / total)};
  });
}

// RGBA pixels (transparency composited over white, as training and predict.py do) resized to width x height.
function resizeBilinear(source, width, height) {
  const {width: w, height: h, data} = source;
  const rgb = new Float32Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const alpha = data[4 * i + 3] / 255;
    for (let c = 0; c < 3; c++) rgb[3 * i + c] = Math.round(data[4 * i + c] * alpha + 255 * (1 - alpha));
  }
  const columns = filterWeights(w, width);
  const rows = filterWeights(h, height);
  const across = new Float32Array(h * width * 3);  // horizontal pass
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < width; x++) {
      const {first, weights} = columns[x];
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let k = 0; k < weights.length; k++) sum += weights[k] * rgb[3 * (y * w + first + k) + c];
        across[3 * (y * width + x) + c] = sum;
      }
    }
  }
  const out = new ImageData(width, height);  // vertical pass
  for (let y = 0; y < height; y++) {
    const {first, weights} = rows[y];
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let k = 0; k < weights.length; k++) sum += weights[k] * across[3 * ((first + k) * width + x) + c];
        out.data[4 * (y * width + x) + c] = Math.min(255, Math.max(0, Math.round(sum)));
      }
      out.data[4 * (y * width + x) + 3] = 255;
    }
  }
  return out;
}

// The model's input from any image source (a region of it): its pixels at their own size, resized here with
// Pillow's bilinear filter to the model's input size (so MediaPipe gets the exact size and resizes nothing) and
// shown in the #input canvas. A source already that size is copied unchanged.
function toInput(source, size, sx = 0, sy = 0, sw = source.width, sh = source.height) {
  const [height, width] = size || [sh, sw];
  const full = new OffscreenCanvas(sw, sh).getContext('2d', {willReadFrequently: true});
  full.drawImage(source, sx, sy, sw, sh, 0, 0, sw, sh);
  const pixels = resizeBilinear(full.getImageData(0, 0, sw, sh), width, height);
  const canvas = $('input');
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d').putImageData(pixels, 0, 0);
  return pixels;
}

// One inference: the top classes and the milliseconds the classify() call took (MediaPipe's preprocessing in it).
function classify(classifier, pixels) {
  const start = performance.now();
  const result = classifier.classify(pixels);
  const ms = performance.now() - start;
  return {top: result.classifications[0].categories, ms};
}

function show({top, ms}, truth = '') {
  $('result').replaceChildren(...top.map((c) => {
    const li = document.createElement('li');
    li.innerHTML = '<span class="label"></span><span class="score"></span><span class="bar"></span>';
    li.querySelector('.label').textContent = c.categoryName || c.displayName || `class ${c.index}`;
    li.querySelector('.score').textContent = `${(100 * c.score).toFixed(1)} %`;
    li.querySelector('.bar').style.width = `${(100 * c.score).toFixed(1)}%`;
    return li;
  }));
  $('latency').textContent = `inference: ${ms.toFixed(2)} ms`;
  $('truth').textContent = truth;
}

async function main() {
  const params = new URLSearchParams(location.search);
  const modelPath = params.get('model') || DEFAULT_MODEL;
  const [{classifier, bytes}, size, samples, sprite] = await Promise.all([
    loadClassifier(modelPath), inputSize(modelPath),
    fetch('samples.json').then((r) => r.json()),
    new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error('samples.png did not load'));
      image.src = 'samples.png';
    }),
  ]);
  $('status').textContent = 'Ready.';
  $('model').textContent = `model: ${modelPath} (${(bytes / 1024).toFixed(0)} KB), MediaPipe Tasks for Web ` +
                           'ImageClassifier, CPU (WebAssembly)';

  const cell = samples.size;
  const cellAt = (i) => [(i % samples.columns) * cell, Math.floor(i / samples.columns) * cell];
  const sampleInput = (i) => toInput(sprite, size, ...cellAt(i), cell, cell);
  for (let i = 0; i < Math.min(SHOWN_SAMPLES, samples.count); i++) {
    const button = document.createElement('button');
    const thumb = document.createElement('canvas');
    thumb.width = thumb.height = cell;
    thumb.getContext('2d').drawImage(sprite, ...cellAt(i), cell, cell, 0, 0, cell, cell);
    button.title = `test image ${i}: ${samples.labels[samples.classes[i]]}`;
    button.append(thumb);
    button.onclick = () => {
      $('photo').hidden = true;
      show(classify(classifier, sampleInput(i)), `true class: ${samples.labels[samples.classes[i]]}`);
    };
    $('samples').append(button);
  }

  const classifyImage = async (blob) => {
    const name = blob.name || 'the dropped file';
    let bitmap;
    try {
      // upright as its EXIF orientation says (phones store portrait photos rotated), colours as stored: as training
      bitmap = await createImageBitmap(blob, {imageOrientation: 'from-image', colorSpaceConversion: 'none'});
    } catch (error) {
      $('status').textContent = `error: ${name} is not an image this browser can decode (${error.message}); ` +
                                'pick a PNG, JPEG or WebP file.';
      $('status').classList.add('error');
      return;
    }
    $('status').textContent = 'Ready.';
    $('status').classList.remove('error');
    URL.revokeObjectURL($('photo').src);
    $('photo').src = URL.createObjectURL(blob);
    $('photo').hidden = false;
    show(classify(classifier, toInput(bitmap, size)), `file: ${name}`);
  };
  $('file').onchange = () => $('file').files[0] && classifyImage($('file').files[0]);
  const drop = $('drop');
  drop.ondragover = (event) => { event.preventDefault(); drop.classList.add('over'); };
  drop.ondragleave = () => drop.classList.remove('over');
  drop.ondrop = (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    const file = [...event.dataTransfer.files].find((f) => f.type.startsWith('image/'));
    if (file) classifyImage(file);
  };
  $('camera').onclick = async () => {
    try {
      $('video').srcObject = await navigator.mediaDevices.getUserMedia({video: true});
      $('video').hidden = $('snap').hidden = false;
    } catch (error) {
      $('status').textContent = `No camera here (${error.message || error}); the page needs https or localhost.`;
    }
  };
  $('snap').onclick = () => {
    const video = $('video');
    $('photo').hidden = true;
    show(classify(classifier, toInput(video, size, 0, 0, video.videoWidth, video.videoHeight)), 'camera frame');
  };

  if (params.has('selftest')) selftest(classifier, samples, sampleInput, Number(params.get('selftest')));
}

function selftest(classifier, samples, sampleInput, n) {
  if (!Number.isInteger(n) || n < 1 || n > samples.count) {
    throw new Error(`?selftest=N needs N in 1..${samples.count} (the bundled test images), got ${n}.`);
  }
  const results = [];
  for (let i = 0; i < n; i++) {
    const {top, ms} = classify(classifier, sampleInput(i));
    results.push({index: top[0].index, label: top[0].categoryName, score: top[0].score, ms,
                  truth: samples.classes[i]});
  }
  const correct = results.filter((r) => r.index === r.truth).length;
  const ms = results.map((r) => r.ms).sort((a, b) => a - b);
  window.selftestResults = {n, correct, medianMs: ms[Math.floor(n / 2)], results};
  $('selftest-json').textContent = JSON.stringify(window.selftestResults);
  $('selftest').textContent = `selftest: ${correct}/${n} correct`;
}

main().catch((error) => {
  for (const id of ['status', 'selftest']) {
    $(id).textContent = `error: ${error.message || error}`;
    $(id).classList.add('error');
  }
});
