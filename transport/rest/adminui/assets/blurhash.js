// BlurHash decoding (https://blurha.sh), small enough to keep here: a
// ready image's placeholder is painted on a canvas before its thumbnail
// loads.

const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

function decode83(s) {
  let v = 0;
  for (const c of s) {
    const d = digits.indexOf(c);
    if (d < 0) throw new Error("not a blurhash");
    v = v * 83 + d;
  }
  return v;
}

function toLinear(v) {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
}

function toSRGB(v) {
  const c = Math.max(0, Math.min(1, v));
  return Math.round((c <= 0.0031308 ? c * 12.92 : 1.055 * Math.pow(c, 1 / 2.4) - 0.055) * 255);
}

function signPow(v, e) {
  return Math.sign(v) * Math.pow(Math.abs(v), e);
}

// decode returns width×height RGBA pixels of the hash.
export function decode(hash, width, height) {
  if (!hash || hash.length < 6) throw new Error("not a blurhash");
  const size = decode83(hash[0]);
  const nx = (size % 9) + 1, ny = Math.floor(size / 9) + 1;
  if (hash.length !== 4 + 2 * nx * ny) throw new Error("blurhash length");
  const maxAC = (decode83(hash[1]) + 1) / 166;
  const colors = [];
  const dc = decode83(hash.slice(2, 6));
  colors.push([toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]);
  for (let i = 1; i < nx * ny; i++) {
    const v = decode83(hash.slice(4 + i * 2, 6 + i * 2));
    const q = (x) => signPow((x - 9) / 9, 2) * maxAC;
    colors.push([q(Math.floor(v / 361)), q(Math.floor(v / 19) % 19), q(v % 19)]);
  }
  const px = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r = 0, g = 0, b = 0;
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const basis = Math.cos((Math.PI * x * i) / width) * Math.cos((Math.PI * y * j) / height);
          const c = colors[i + j * nx];
          r += c[0] * basis; g += c[1] * basis; b += c[2] * basis;
        }
      }
      const o = 4 * (x + y * width);
      px[o] = toSRGB(r); px[o + 1] = toSRGB(g); px[o + 2] = toSRGB(b); px[o + 3] = 255;
    }
  }
  return px;
}

// paint draws the hash on a canvas of its own size (CSS scales it up).
export function paint(canvas, hash) {
  const w = canvas.width, h = canvas.height;
  try {
    const img = new ImageData(decode(hash, w, h), w, h);
    canvas.getContext("2d").putImageData(img, 0, 0);
    return true;
  } catch {
    return false;
  }
}
