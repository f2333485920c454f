// The preprocessing contract in JavaScript: hh.edge.preprocess.fit_to_spec on a camera's RGBA
// pixels. Canvas drawImage resamples with the browser's own filter, so the resize is done here,
// with the integers hh.edge.resample defines (the same bytes as Python on x86-64 and arm64,
// which tests/test_web.py checks byte for byte):
//   bilinear  OpenCV's INTER_LINEAR_EXACT: double-precision source positions, weights rounded
//             to 1/256, integer row blends, one rounding shift
//   area      the exact mean of the covered source area, rounded half up
//   nearest   the source pixel under the output pixel's centre
// The exact resizes read the RGBA frame in place, only the pixels of the crop they use.
// Models made before these (spec resize "opencv") keep the approximations of OpenCV's own
// INTER_LINEAR / INTER_AREA / INTER_NEAREST_EXACT below, within one level of OpenCV's.

// The largest centred box of the target aspect ratio: [top, left, height, width] (hh.edge.spec).
export function centerCropBox(height, width, targetHeight, targetWidth) {
  const cropHeight = Math.max(1, Math.min(height, Math.floor((width * targetHeight) / targetWidth)));
  const cropWidth = Math.max(1, Math.min(width, Math.floor((height * targetWidth) / targetHeight)));
  return [Math.floor((height - cropHeight) / 2), Math.floor((width - cropWidth) / 2), cropHeight, cropWidth];
}

// floor(a / b) for whole numbers a >= 0, b > 0 below 2^53, without a rounded quotient.
function floorDiv(a, b) {
  return (a - (a % b)) / b;
}

function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// One axis of INTER_LINEAR_EXACT: the two source indices and weights (out of 256) per output.
export function linearExactTable(srcSize, dstSize) {
  const scale = 1 / (dstSize / srcSize); // OpenCV's own doubles: 1 / (dst / src)
  const first = new Int32Array(dstSize);
  const second = new Int32Array(dstSize);
  const w1 = new Int32Array(dstSize);
  for (let d = 0; d < dstSize; d++) {
    const f = scale * (d + 0.5) - 0.5;
    const i = Math.floor(f);
    if (i >= 0 && srcSize > 1 && i < srcSize - 1) {
      first[d] = i;
      second[d] = i + 1;
      w1[d] = roundHalfEven((f - i) * 256);
    } else {
      first[d] = second[d] = i >= 0 && srcSize > 1 ? srcSize - 1 : 0; // clamped: the edge pixel alone
    }
  }
  return { first, second, w1 };
}

// src: pixels with `channels` per pixel, `stride` pixels a row; box [top, left, height, width].
function resizeBilinearExact(src, stride, channels, box, dw, dh) {
  const [top, left, sh, sw] = box;
  const xs = linearExactTable(sw, dw);
  const ys = linearExactTable(sh, dh);
  const dst = new Uint8Array(dw * dh * 3);
  const rows = [new Int32Array(dw * 3), new Int32Array(dw * 3)];
  const rowOf = [-1, -1];
  const blendRow = (sy, slot) => {
    if (rowOf[slot] === sy) return rows[slot];
    const out = rows[slot];
    const base = (top + sy) * stride + left;
    for (let x = 0; x < dw; x++) {
      const a = (base + xs.first[x]) * channels;
      const b = (base + xs.second[x]) * channels;
      const w1 = xs.w1[x];
      const w0 = 256 - w1;
      out[x * 3] = w0 * src[a] + w1 * src[b];
      out[x * 3 + 1] = w0 * src[a + 1] + w1 * src[b + 1];
      out[x * 3 + 2] = w0 * src[a + 2] + w1 * src[b + 2];
    }
    rowOf[slot] = sy;
    return out;
  };
  for (let y = 0; y < dh; y++) {
    const r0 = blendRow(ys.first[y], 0);
    const r1 = blendRow(ys.second[y], 1);
    const w1 = ys.w1[y];
    const w0 = 256 - w1;
    const o = y * dw * 3;
    for (let i = 0; i < dw * 3; i++) dst[o + i] = (w0 * r0[i] + w1 * r1[i] + 32768) >> 16;
  }
  return dst;
}

// One axis of the exact area mean: per output, the covered source indices and their weights
// in 1/dstSize of a source pixel (output d spans [d*S, (d+1)*S), source s spans [s*D, (s+1)*D)).
export function areaExactTable(srcSize, dstSize) {
  const table = [];
  for (let d = 0; d < dstSize; d++) {
    const first = floorDiv(d * srcSize, dstSize);
    const last = floorDiv((d + 1) * srcSize - 1, dstSize);
    const entries = [];
    for (let s = first; s <= last; s++) {
      const weight = Math.min((d + 1) * srcSize, (s + 1) * dstSize) - Math.max(d * srcSize, s * dstSize);
      if (weight > 0) entries.push([s, weight]);
    }
    table.push(entries);
  }
  return table;
}

function resizeAreaExact(src, stride, channels, box, dw, dh) {
  const [top, left, sh, sw] = box;
  const xs = areaExactTable(sw, dw);
  const ys = areaExactTable(sh, dh);
  // Horizontal sums of every source row of the box (exact: whole numbers below 2^53).
  const partial = new Float64Array(sh * dw * 3);
  for (let y = 0; y < sh; y++) {
    const base = (top + y) * stride + left;
    for (let x = 0; x < dw; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (const [sx, w] of xs[x]) {
        const i = (base + sx) * channels;
        r += w * src[i];
        g += w * src[i + 1];
        b += w * src[i + 2];
      }
      const o = (y * dw + x) * 3;
      partial[o] = r;
      partial[o + 1] = g;
      partial[o + 2] = b;
    }
  }
  const denominator = 2 * sh * sw; // the weights of one output sum to sh * sw
  const dst = new Uint8Array(dw * dh * 3);
  for (let y = 0; y < dh; y++) {
    for (let i = 0; i < dw * 3; i++) {
      let total = 0;
      for (const [sy, w] of ys[y]) total += w * partial[sy * dw * 3 + i];
      dst[y * dw * 3 + i] = floorDiv(2 * total + sh * sw, denominator);
    }
  }
  return dst;
}

export function nearestExactTable(srcSize, dstSize) {
  return Int32Array.from({ length: dstSize }, (_, d) => Math.min(floorDiv((2 * d + 1) * srcSize, 2 * dstSize), srcSize - 1));
}

function resizeNearestCentre(src, stride, channels, box, dw, dh) {
  const [top, left, sh, sw] = box;
  const xs = nearestExactTable(sw, dw);
  const ys = nearestExactTable(sh, dh);
  const dst = new Uint8Array(dw * dh * 3);
  for (let y = 0; y < dh; y++) {
    const base = (top + ys[y]) * stride + left;
    for (let x = 0; x < dw; x++) {
      const i = (base + xs[x]) * channels;
      const o = (y * dw + x) * 3;
      dst[o] = src[i];
      dst[o + 1] = src[i + 1];
      dst[o + 2] = src[i + 2];
    }
  }
  return dst;
}

const EXACT_RESIZES = { bilinear: resizeBilinearExact, area: resizeAreaExact, nearest: resizeNearestCentre };

// ---- the resize of models made before the exact one (spec resize "opencv") ----

const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;


// Source index and fixed-point weights for one axis of INTER_LINEAR (or INTER_AREA enlarging).
function linearTable(srcSize, dstSize, areaMode) {
  // OpenCV's own doubles: inv_scale = dst/src, scale = 1/inv_scale (not src/dst, which can
  // differ in the last bit and move a weight of exactly 1 to the next pixel).
  const inv = dstSize / srcSize;
  const scale = 1 / inv;
  const index = new Int32Array(dstSize);
  const w0 = new Int32Array(dstSize);
  const w1 = new Int32Array(dstSize);
  for (let d = 0; d < dstSize; d++) {
    let s;
    let f;
    if (!areaMode) {
      f = Math.fround((d + 0.5) * scale - 0.5);
      s = Math.floor(f);
      f = Math.fround(f - s);
    } else {
      s = Math.floor(d * scale);
      f = Math.fround(d + 1 - (s + 1) * inv);
      f = f <= 0 ? 0 : Math.fround(f - Math.floor(f));
    }
    if (s < 0) { f = 0; s = 0; }
    if (s >= srcSize - 1) { f = 0; s = srcSize - 1; }
    index[d] = s;
    w0[d] = Math.round(Math.fround(1 - f) * COEF_SCALE);
    w1[d] = Math.round(f * COEF_SCALE);
  }
  return { index, w0, w1 };
}

function resizeLinear(src, sw, sh, dw, dh, areaMode) {
  const xs = linearTable(sw, dw, areaMode);
  const ys = linearTable(sh, dh, areaMode);
  const dst = new Uint8Array(dw * dh * 3);
  const row0 = new Int32Array(dw * 3);
  const row1 = new Int32Array(dw * 3);
  const horizontal = (sy, out) => {
    const base = sy * sw * 3;
    for (let x = 0; x < dw; x++) {
      const s = xs.index[x];
      const s1 = Math.min(s + 1, sw - 1);
      for (let c = 0; c < 3; c++) {
        out[x * 3 + c] = src[base + s * 3 + c] * xs.w0[x] + src[base + s1 * 3 + c] * xs.w1[x];
      }
    }
  };
  for (let y = 0; y < dh; y++) {
    const sy = ys.index[y];
    horizontal(sy, row0);
    horizontal(Math.min(sy + 1, sh - 1), row1);
    const b0 = ys.w0[y];
    const b1 = ys.w1[y];
    for (let i = 0; i < dw * 3; i++) {
      // OpenCV's vectorised vertical pass: 16-bit multiplies, then a rounding shift by 2.
      const v = (((((row0[i] >> 4) * b0) >> 16) + (((row1[i] >> 4) * b1) >> 16)) + 2) >> 2;
      dst[y * dw * 3 + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return dst;
}

// Area weights for one axis when shrinking (OpenCV's computeResizeAreaTab).
function areaTable(srcSize, dstSize) {
  const scale = 1 / (dstSize / srcSize); // as OpenCV computes it
  const table = [];
  for (let d = 0; d < dstSize; d++) {
    const f1 = d * scale;
    const f2 = f1 + scale;
    const cell = Math.min(scale, srcSize - f1);
    let s1 = Math.ceil(f1);
    const s2 = Math.floor(f2);
    const entries = [];
    s1 = Math.min(s1, srcSize - 1);
    if (s1 - f1 > 1e-3) entries.push([s1 - 1, (s1 - f1) / cell]);
    for (let s = s1; s < s2; s++) entries.push([s, 1 / cell]);
    if (f2 - s2 > 1e-3 && s2 < srcSize) entries.push([s2, Math.min(Math.min(f2 - s2, 1), cell) / cell]);
    table.push(entries);
  }
  return table;
}

function resizeArea(src, sw, sh, dw, dh) {
  const xs = areaTable(sw, dw);
  const ys = areaTable(sh, dh);
  const dst = new Uint8Array(dw * dh * 3);
  const acc = new Float64Array(3);
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) {
      acc[0] = acc[1] = acc[2] = 0;
      for (const [sy, wy] of ys[y]) {
        for (const [sx, wx] of xs[x]) {
          const w = wy * wx;
          const i = (sy * sw + sx) * 3;
          acc[0] += src[i] * w;
          acc[1] += src[i + 1] * w;
          acc[2] += src[i + 2] * w;
        }
      }
      for (let c = 0; c < 3; c++) dst[(y * dw + x) * 3 + c] = Math.max(0, Math.min(255, roundHalfEven(acc[c])));
    }
  }
  return dst;
}

function resizeNearestExact(src, sw, sh, dw, dh) {
  const table = (s, d) => {
    const ifx = Math.floor(((s * 65536) + Math.floor(d / 2)) / d);
    const ifx0 = Math.floor(ifx / 2) - (s % 2);
    return Int32Array.from({ length: d }, (_, i) => Math.min(Math.floor((ifx * i + ifx0) / 65536), s - 1));
  };
  const xs = table(sw, dw);
  const ys = table(sh, dh);
  const dst = new Uint8Array(dw * dh * 3);
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) {
      const i = (ys[y] * sw + xs[x]) * 3;
      const o = (y * dw + x) * 3;
      dst[o] = src[i];
      dst[o + 1] = src[i + 1];
      dst[o + 2] = src[i + 2];
    }
  }
  return dst;
}

// RGBA pixels (canvas ImageData) of width x height -> RGB uint8, cropped to a box.
export function rgbaToRgb(rgba, width, box) {
  const [top, left, h, w] = box;
  const out = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = ((top + y) * width + left + x) * 4;
      const o = (y * w + x) * 3;
      out[o] = rgba[i];
      out[o + 1] = rgba[i + 1];
      out[o + 2] = rgba[i + 2];
    }
  }
  return out;
}

// An RGBA frame -> the model's input: spec-sized RGB uint8 [height * width * 3].
export function fitToSpec(rgba, width, height, spec) {
  const box = spec.aspect === "crop" ? centerCropBox(height, width, spec.height, spec.width) : [0, 0, height, width];
  if ((spec.resize ?? "exact") === "exact") return EXACT_RESIZES[spec.interpolation](rgba, width, 4, box, spec.width, spec.height);
  const rgb = rgbaToRgb(rgba, width, box);
  const [, , h, w] = box;
  if (spec.interpolation === "nearest") return resizeNearestExact(rgb, w, h, spec.width, spec.height);
  if (spec.interpolation === "area") {
    const shrinking = w >= spec.width && h >= spec.height;
    return shrinking ? resizeArea(rgb, w, h, spec.width, spec.height) : resizeLinear(rgb, w, h, spec.width, spec.height, true);
  }
  return resizeLinear(rgb, w, h, spec.width, spec.height, false);
}
