// The image-quality gate as hh.edge.quality computes it, on the model-sized RGB image:
//   sharpness   variance of the Laplacian of the grey image (blur lowers it)
//   brightness  mean grey level (shade lowers it, glare raises it)
//   contrast    standard deviation of the grey level (an empty or washed-out view lowers it)
// compared with the thresholds hh-convert calibrated on the training images (spec.quality).
// The grey image and the Laplacian are OpenCV's integers exactly (cvtColor RGB2GRAY's 15-bit
// weights; the 3x3 Laplacian with its default border, reflect-101); the sums are exact, where
// Python's variance is float32: the measures agree to about 1e-6, relatively.

export const RETAKE = "retake";
// Why a frame should be retaken, in the words shown to the person holding the camera.
export const TOO_DARK = "too dark";
export const TOO_BRIGHT = "too bright";
export const LOW_CONTRAST = "low contrast";
export const BLURRY = "blurry";

// OpenCV 5's RGB -> grey for 8-bit images: 0.299, 0.587, 0.114 in 15-bit fixed point (the
// weights summing to 32768), rounded; equal to cv2.cvtColor on every one of 200,000 random pixels.
export function greyOf(rgb) {
  const grey = new Uint8Array(rgb.length / 3);
  for (let i = 0, j = 0; i < grey.length; i++, j += 3) {
    grey[i] = (rgb[j] * 9798 + rgb[j + 1] * 19235 + rgb[j + 2] * 3735 + 16384) >> 15;
  }
  return grey;
}

// reflect-101: -1 -> 1, n -> n - 2 (OpenCV's BORDER_DEFAULT)
function reflect101(i, n) {
  if (n === 1) return 0;
  if (i < 0) return -i;
  if (i >= n) return 2 * n - 2 - i;
  return i;
}

// {sharpness, brightness, contrast} of a model-sized RGB image, row-major, 3 values a pixel.
// Every sum is of whole numbers below 2^53, so exact: one pass each, no rounding until the end.
export function measure(rgb, width, height) {
  const grey = greyOf(rgb);
  const n = width * height;
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < n; i++) {
    sum += grey[i];
    squares += grey[i] * grey[i];
  }
  const brightness = sum / n;
  const contrast = Math.sqrt(Math.max(0, squares / n - brightness * brightness));
  // The Laplacian, kernel [0 1 0; 1 -4 1; 0 1 0]; its border rows and columns reflected.
  let lapSum = 0;
  let lapSquares = 0;
  for (let y = 0; y < height; y++) {
    const up = reflect101(y - 1, height) * width;
    const down = reflect101(y + 1, height) * width;
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const left = x > 0 ? x - 1 : reflect101(x - 1, width);
      const right = x < width - 1 ? x + 1 : reflect101(x + 1, width);
      const value = grey[up + x] + grey[down + x] + grey[row + left] + grey[row + right] - 4 * grey[row + x];
      lapSum += value;
      lapSquares += value * value;
    }
  }
  const lapMean = lapSum / n;
  return { sharpness: Math.max(0, lapSquares / n - lapMean * lapMean), brightness, contrast };
}

// Why a frame should be retaken, or null when it is fine (hh.edge.quality.check): exposure
// first, since a dark or blank frame is also flat and blurry-looking, and "too dark" is what
// the person holding the camera can fix.
export function check(measures, thresholds) {
  if (measures.brightness < thresholds.min_brightness) return TOO_DARK;
  if (measures.brightness > thresholds.max_brightness) return TOO_BRIGHT;
  if (measures.contrast < thresholds.min_contrast) return LOW_CONTRAST;
  if (measures.sharpness < thresholds.min_sharpness) return BLURRY;
  return null;
}
