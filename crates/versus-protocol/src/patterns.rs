//! The shapes of the strings the server accepts, as JSON Schema patterns (ECMA-262 syntax that
//! Python's `re` and Rust's `regex` read alike), for the OpenAPI document. The rules themselves
//! are the `versus-core` newtypes' `parse`; a server test holds each pattern to its parser.

/// `Username`: 3–32 characters of `A-Z a-z 0-9 _ -`.
pub const USERNAME: &str = "^[A-Za-z0-9_-]{3,32}$";

/// `DisplayName`: 1–32 printable characters, no whitespace at either end. "Unprintable" is a
/// control character or one of the invisible formatting characters below.
pub const DISPLAY_NAME: &str = concat!(
    "^[^\\s\\x00-\\x1F\\x7F-\\x9F\\u00AD\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF\\uFFF9-\\uFFFB]",
    "(?:[^\\x00-\\x1F\\x7F-\\x9F\\u00AD\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF\\uFFF9-\\uFFFB]{0,30}",
    "[^\\s\\x00-\\x1F\\x7F-\\x9F\\u00AD\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF\\uFFF9-\\uFFFB])?$",
);

/// `Region`: 2–32 characters of `a-z 0-9 -`, starting with a letter.
pub const REGION: &str = "^[a-z][a-z0-9-]{1,31}$";

/// `Idempotency-Key` header: 1–255 visible ASCII characters.
pub const IDEMPOTENCY_KEY: &str = "^[!-~]{1,255}$";

/// `Sec-WebSocket-Key`: 16 random bytes in base64.
pub const WEBSOCKET_KEY: &str = "^[A-Za-z0-9+/]{22}==$";

/// `DeviceId`: 6–128 visible ASCII characters.
pub const DEVICE_ID: &str = "^[!-~]{6,128}$";
