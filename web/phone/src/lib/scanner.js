/**
 * The camera QR scanner: getUserMedia (rear camera preferred), decoding with
 * the native BarcodeDetector where the browser has one for QR codes, else
 * jsQR on canvas frames; a torch toggle when the camera track supports it.
 *
 * jsQR is a separate file (qr-decoder.js, same origin, cached for offline use
 * by the service worker), loaded only when there is no native detector.
 */

const FRAME_INTERVAL_MS = 120;

async function nativeDetector() {
  if (!("BarcodeDetector" in globalThis)) return null;
  try {
    const formats = await globalThis.BarcodeDetector.getSupportedFormats();
    if (!formats.includes("qr_code")) return null;
    return new globalThis.BarcodeDetector({ formats: ["qr_code"] });
  } catch {
    return null;
  }
}

let jsqrLoading = null;

/** Load dist/qr-decoder.js once; resolves to the jsQR function. */
function loadJsQR() {
  if (globalThis.unlatchJsQR) return Promise.resolve(globalThis.unlatchJsQR);
  if (!jsqrLoading) {
    jsqrLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "qr-decoder.js";
      script.async = true;
      script.onload = () => resolve(globalThis.unlatchJsQR);
      script.onerror = () => {
        jsqrLoading = null;
        reject(new Error("the QR decoder could not be loaded"));
      };
      document.head.append(script);
    });
  }
  return jsqrLoading;
}

/** A user-facing reason for a camera failure. */
export function cameraErrorMessage(err) {
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was refused. Allow the camera for this app in the browser's site settings, or paste the link instead.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found on this device. Paste the link instead.";
    case "NotReadableError":
      return "The camera is in use by another app. Close it and try again.";
    default:
      return "The camera could not be started. Paste the link instead.";
  }
}

export class Scanner {
  /** `video`: a <video> element to show the camera in; `onCode(text)` gets the first QR found. */
  constructor(video, onCode) {
    this.video = video;
    this.onCode = onCode;
    this.stream = null;
    this.track = null;
    this.engine = null;
    this._timer = null;
    this._stopped = false;
    this._canvas = document.createElement("canvas");
    this._ctx = this._canvas.getContext("2d", { willReadFrequently: true });
  }

  async start() {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw Object.assign(new Error("no camera API"), { name: "NotFoundError" });
    }
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
    });
    if (this._stopped) {
      this.stop();
      return;
    }
    this.track = this.stream.getVideoTracks()[0] || null;
    this.video.srcObject = this.stream;
    this.video.setAttribute("playsinline", "");
    this.video.muted = true;
    await this.video.play().catch(() => {});
    const detector = await nativeDetector();
    this.engine = detector ? "BarcodeDetector" : "jsQR";
    this._detector = detector;
    if (!detector) this._jsQR = await loadJsQR();
    this._loop();
  }

  get torchSupported() {
    try {
      return Boolean(this.track?.getCapabilities?.().torch);
    } catch {
      return false;
    }
  }

  async setTorch(on) {
    if (!this.track) return;
    await this.track.applyConstraints({ advanced: [{ torch: on }] });
  }

  _loop() {
    if (this._stopped) return;
    this._timer = setTimeout(async () => {
      try {
        const text = await this._decodeFrame();
        if (text && !this._stopped) {
          this.stop();
          this.onCode(text);
          return;
        }
      } catch {
        // a frame that cannot be read: try the next one
      }
      this._loop();
    }, FRAME_INTERVAL_MS);
  }

  async _decodeFrame() {
    const v = this.video;
    if (v.readyState < 2 || !v.videoWidth) return null;
    if (this._detector) {
      const codes = await this._detector.detect(v);
      return codes.length ? codes[0].rawValue : null;
    }
    const scale = Math.min(1, 800 / Math.max(v.videoWidth, v.videoHeight));
    const w = Math.round(v.videoWidth * scale);
    const h = Math.round(v.videoHeight * scale);
    this._canvas.width = w;
    this._canvas.height = h;
    this._ctx.drawImage(v, 0, 0, w, h);
    const image = this._ctx.getImageData(0, 0, w, h);
    // Both polarities: a terminal with a light background shows the CLI's QR code
    // light-on-dark (inverted), which a dark-on-light-only search never finds.
    const code = this._jsQR(image.data, w, h, { inversionAttempts: "attemptBoth" });
    return code ? code.data : null;
  }

  stop() {
    this._stopped = true;
    clearTimeout(this._timer);
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    this.track = null;
    if (this.video) this.video.srcObject = null;
  }
}
