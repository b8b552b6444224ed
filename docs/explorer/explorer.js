// The latent explorer of the course site: the pretrained ELBO-VAE and MMD-VAE decoders run in the browser.
//
// It reads what `galaxy-ae export-web` wrote next to this file (explorer.json, NAME.onnx) and decodes with
// onnxruntime-web's WebAssembly build (ort/, copied from npm by docs/build_site.py): no kernel, no server, no
// CDN. Both models start from a code (their mean code, a real galaxy's code, or a draw from the prior), and
// slider j moves each model's j-th most informative dimension away from that start, in units of sigma: the
// spread of real galaxies' codes in that dimension. The two models' dimensions are unrelated (ELBO's z13 is
// not MMD's z13), so each slider says which dimension it moves in which model.
//
// For tests and benchmarks the page exposes window.galaxyExplorer (see `api` at the bottom).

import * as ort from "./ort/ort.wasm.min.mjs";

const FORMAT = 1; // of explorer.json, as galaxy_autoencoders/web.py writes it
const N_SIGMA = 3; // sliders run from -3 to +3 sigma: where real galaxies' codes live
const here = new URL(".", import.meta.url);

ort.env.wasm.wasmPaths = new URL("ort/", here).href;
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a plain static server does not give

const root = document.getElementById("galaxy-explorer");
const status = root.querySelector(".ge-status");

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// A seeded normal generator (mulberry32 + Box-Muller), so "Sample the prior" is repeatable in a test.
function normals(seed) {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n) => Float32Array.from({ length: n }, () => {
    const u = 1 - uniform(); // in (0, 1]: the logarithm stays finite
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  });
}

// A slider's position as people read it: "+1.5σ", "−0.3σ".
function sigmaText(value) {
  return `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(1)}σ`;
}

function ordinal(n) {
  const suffix = n % 10 === 1 && n !== 11 ? "st" : n % 10 === 2 && n !== 12 ? "nd" : n % 10 === 3 && n !== 13 ? "rd" : "th";
  return `${n}${suffix}`;
}

// One model: its decoder session, its statistics, its canvas, and the code it shows.
class Model {
  constructor(spec, session) {
    Object.assign(this, spec); // key, label, latent_size, img_size, mean, std, kl, order, strip_codes
    this.session = session;
    this.start = Float32Array.from(spec.mean);
    this.canvas = element("canvas", {
      width: spec.img_size, height: spec.img_size, "data-model": spec.key, role: "img",
      "aria-label": `the galaxy the ${spec.label} decodes from its code`,
    });
    this.bars = element("canvas", { class: "ge-bars", width: 240, height: 48 });
    this.caption = element("figcaption", { class: "ge-source" });
    this.figure = element(
      "figure",
      { class: `ge-model ge-${spec.key}` },
      element("figcaption", {}, element("strong", {}, spec.label)),
      this.canvas,
      this.bars,
      this.caption,
    );
  }

  code(offsets) {
    const z = Float32Array.from(this.start);
    offsets.forEach((offset, j) => {
      const d = this.order[j];
      z[d] += offset * this.std[d];
    });
    return z;
  }

  async draw(z) {
    const { image } = await this.session.run({ z: new ort.Tensor("float32", z, [1, z.length]) });
    const side = this.img_size;
    const area = side * side;
    const pixels = new ImageData(side, side);
    for (let i = 0; i < area; i++) {
      for (let c = 0; c < 3; c++) pixels.data[4 * i + c] = Math.round(Math.min(Math.max(image.data[c * area + i], 0), 1) * 255);
      pixels.data[4 * i + 3] = 255;
    }
    this.canvas.getContext("2d").putImageData(pixels, 0, 0);
    this.drawBars(z);
  }

  // The code on show, one bar per slider's dimension: sigma from the mean code, clipped to +-3.
  drawBars(z) {
    const context = this.bars.getContext("2d");
    const { width, height } = this.bars;
    const k = sliderCount;
    const step = width / k;
    context.clearRect(0, 0, width, height);
    // The model's colour from the style sheet, read once: reading a computed style on every slider move costs.
    this.colour ??= getComputedStyle(this.figure).getPropertyValue("--ge-colour") || "#888";
    context.fillStyle = this.colour;
    for (let j = 0; j < k; j++) {
      const d = this.order[j];
      const sigmas = Math.max(-N_SIGMA, Math.min(N_SIGMA, (z[d] - this.mean[d]) / (this.std[d] || 1)));
      const bar = (sigmas / N_SIGMA) * (height / 2);
      context.fillRect(j * step + 2, height / 2 - Math.max(bar, 0), step - 4, Math.abs(bar) || 1);
    }
    context.fillStyle = "#999";
    context.fillRect(0, height / 2, width, 1);
  }
}

let models = [];
let sliders = [];
let sliderCount = 0;
let galaxyButtons = [];
// count: redraws finished; first: when the first pictures were on the canvases (ms since the page was requested);
// timings: {model, ms} from a slider's input event to that model's new pixels on its canvas.
const drawn = { count: 0, first: null, timings: [] };
let busy = null; // the redraw in flight
let again = false; // a slider moved during it: draw once more with the newest values
let inputTime = null;

function offsets() {
  return sliders.map((slider) => Number(slider.input.value));
}

async function redraw() {
  if (busy) {
    again = true;
    return busy;
  }
  busy = (async () => {
    do {
      again = false;
      const since = inputTime;
      inputTime = null;
      const values = offsets();
      for (const model of models) {
        await model.draw(model.code(values));
        if (since !== null) drawn.timings.push({ model: model.key, ms: performance.now() - since });
      }
      drawn.count += 1;
      drawn.first ??= performance.now();
    } while (again);
  })();
  try {
    await busy;
  } finally {
    busy = null;
  }
}

function setSliders(value) {
  for (const slider of sliders) {
    slider.input.value = value;
    slider.output.value = sigmaText(Number(value));
    slider.input.setAttribute("aria-valuetext", slider.output.value);
  }
}

// Start every model from its own code (Float32Array per model key), sliders back at 0, and say where from.
function startFrom(codes, where, galaxy = null) {
  for (const model of models) {
    model.start = Float32Array.from(codes[model.key]);
    model.caption.textContent = `${where}: its ${model.label} code`;
  }
  galaxyButtons.forEach((button, i) => button.setAttribute("aria-pressed", String(i === galaxy)));
  setSliders(0);
  status.textContent = `Showing ${where}. Each model's picture is decoded from its own code, in your browser.`;
  return redraw();
}

function reset() {
  return startFrom(Object.fromEntries(models.map((m) => [m.key, m.mean])), "the mean galaxy");
}

const prior = normals(2024);
function samplePrior() {
  const codes = Object.fromEntries(models.map((m) => [m.key, prior(m.latent_size)]));
  return startFrom(codes, "a draw from the prior N(0, I), one per model");
}

function build(page) {
  sliderCount = page.sliders;
  const pictures = element("div", { class: "ge-pictures" }, ...models.map((m) => m.figure));
  const buttons = element(
    "div",
    { class: "ge-buttons" },
    element("button", { type: "button", "data-action": "reset" }, "Reset to the mean"),
    element("button", { type: "button", "data-action": "sample" }, "Sample the prior"),
  );
  buttons.querySelector('[data-action="reset"]').addEventListener("click", reset);
  buttons.querySelector('[data-action="sample"]').addEventListener("click", samplePrior);

  const list = element("div", { class: "ge-sliders" });
  for (let j = 0; j < sliderCount; j++) {
    const dims = models.map((m) => element("span", { class: `ge-dim ge-${m.key}` }, `${m.label.split("-")[0]} z${m.order[j]}`));
    // The label around it names the slider ("1st ELBO z13 MMD z5"); aria-valuetext reads its value in sigma.
    const input = element("input", { type: "range", min: -N_SIGMA, max: N_SIGMA, step: 0.1, value: 0, "aria-valuetext": "+0.0σ" });
    const output = element("output", {}, "+0.0σ");
    input.addEventListener("input", (event) => {
      inputTime = inputTime ?? event.timeStamp;
      output.value = sigmaText(Number(input.value));
      input.setAttribute("aria-valuetext", output.value);
      redraw();
    });
    list.append(element("label", { class: "ge-slider" }, element("span", { class: "ge-rank" }, ordinal(j + 1), ...dims), input, output));
    sliders.push({ input, output });
  }

  galaxyButtons = page.strip.map((galaxy, i) => {
    const button = element(
      "button",
      { type: "button", class: "ge-galaxy", "aria-pressed": "false", title: galaxy.label },
      element("img", { src: galaxy.png, alt: "", width: 69, height: 69 }), // the label below names it
      element("span", {}, galaxy.label),
    );
    const codes = Object.fromEntries(models.map((m) => [m.key, m.strip_codes[i]]));
    button.addEventListener("click", () => startFrom(codes, `real galaxy ${galaxy.index} (${galaxy.label})`, i));
    return button;
  });
  const strip = element("div", { class: "ge-strip" }, ...galaxyButtons);

  root.replaceChildren(
    status,
    pictures,
    buttons,
    element("p", { class: "ge-help" }, "Sliders: σ from the start, most informative dimension first (by KL). Each names the dimension it moves in each model."),
    list,
    element("p", { class: "ge-help" }, `Start from a real galaxy (one of each class, from the ${page.galaxies.name} set), encoded by each model:`),
    strip,
  );
}

async function main() {
  const response = await fetch(new URL("explorer.json", here));
  if (!response.ok) throw new Error(`explorer.json: HTTP ${response.status}; run galaxy-ae export-web into this folder`);
  const page = await response.json();
  if (page.format !== FORMAT) throw new Error(`explorer.json has format ${page.format}; this page reads ${FORMAT}: export again`);
  models = await Promise.all(
    page.models.map(async (spec) => {
      const file = await fetch(new URL(spec.file, here));
      if (!file.ok) throw new Error(`${spec.file}: HTTP ${file.status}; run galaxy-ae export-web into this folder`);
      const bytes = await file.arrayBuffer();
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
      return new Model(spec, session);
    }),
  );
  build(page);
  await reset();
}

const ready = main().catch((error) => {
  status.textContent = `The explorer could not start: ${error.message}`;
  status.classList.add("ge-error");
  throw error;
});

// For tests and benchmarks: show given codes, read a model's pixels, wait for drawing to finish.
const api = {
  ready,
  drawn,
  reset,
  samplePrior,
  show: (codes) => startFrom(Object.fromEntries(Object.entries(codes).map(([k, z]) => [k, Float32Array.from(z)])), "codes set by a script"),
  pixels: (key) => {
    const canvas = root.querySelector(`canvas[data-model="${key}"]`);
    return Array.from(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data);
  },
  idle: async () => {
    while (busy) await busy;
  },
};
window.galaxyExplorer = api;
