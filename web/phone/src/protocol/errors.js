/**
 * Every way a protocol message or step can fail (mirror of unlatch/protocol/errors.py).
 *
 * All derive from ProtocolError, so one `instanceof ProtocolError` handles
 * every parse and verification failure; `code` is the same short string as
 * the Python class's `code`, so the app can choose what to tell the user.
 * Messages never contain key material.
 */

export class ProtocolError extends Error {
  static code = "protocol_error";

  constructor(message) {
    super(message);
    this.name = new.target.name;
  }

  get code() {
    return this.constructor.code;
  }
}

/** The bytes are not a well-formed message (encoding, sizes, field count). */
export class MalformedMessage extends ProtocolError {
  static code = "malformed";
}

/** The message was made by an incompatible protocol version. */
export class UnsupportedVersion extends ProtocolError {
  static code = "unsupported_version";
}

/** A well-formed message of the wrong type, or in the wrong state. */
export class UnexpectedMessage extends ProtocolError {
  static code = "unexpected";
}

/** A MAC or AEAD tag did not verify: the message was forged or altered. */
export class AuthenticationFailed extends ProtocolError {
  static code = "authentication_failed";
}

/** The QR code or push names a pairing this device does not have (phishing case). */
export class UnknownPairing extends ProtocolError {
  static code = "unknown_pairing";
}

/** The request is older than its lifetime (or from too far in the future). */
export class RequestExpired extends ProtocolError {
  static code = "expired";
}

/** The request was already answered or closed: every request is single use. */
export class AlreadyAnswered extends ProtocolError {
  static code = "already_answered";
}

/** The message belongs to another request (request id mismatch). */
export class WrongRequest extends ProtocolError {
  static code = "wrong_request";
}

/** The state machine cannot take this step in its current state. */
export class InvalidState extends ProtocolError {
  static code = "invalid_state";
}

/** The desktop asked for an unlock mode this phone did not allow for the pairing. */
export class ModeNotAllowed extends ProtocolError {
  static code = "mode_not_allowed";
}
