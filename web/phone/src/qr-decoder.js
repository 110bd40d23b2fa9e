/**
 * jsQR, as its own bundle (dist/qr-decoder.js): loaded by the scanner only in
 * browsers without a native BarcodeDetector for QR codes, so phones that have
 * one never download it.
 */

import jsQR from "jsqr";

globalThis.unlatchJsQR = jsQR;
