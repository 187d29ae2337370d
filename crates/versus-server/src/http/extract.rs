//! Request extractors whose rejections are problem documents naming the offending field,
//! instead of axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::http::error::ApiError;

/// A JSON body. Requires `content-type: application/json` (or any `+json` type), honours the
/// body-size limit, and reports the JSON path of the first field that failed to deserialise.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(0, |limit| limit.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::MalformedBody {
                    field: None,
                    detail: rejection.body_text(),
                }
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The configured body limit, put into request extensions so rejections can quote it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Deserialises `bytes`, naming the failing field: its JSON path where serde knows it, or the
/// field quoted in serde's message for missing and unknown fields.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body this API takes is an object; serde would otherwise read an array as a struct's
    // fields in order and blame "[0]".
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::MalformedBody {
            field: None,
            detail: "body must be a JSON object".to_owned(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            // Where the text stopped parsing says little about which field is wrong.
            return ApiError::MalformedBody {
                field: None,
                detail: format!("body is not valid JSON: {message}"),
            };
        }
        let field = if path != "." {
            Some(path)
        } else {
            quoted_field(&message)
        };
        ApiError::MalformedBody {
            field,
            detail: message,
        }
    })?;
    deserializer.end().map_err(|err| ApiError::MalformedBody {
        field: None,
        detail: format!("body is not valid JSON: {err}"),
    })?;
    Ok(value)
}

/// serde names missing and unknown fields in backticks: "missing field `username`".
fn quoted_field(message: &str) -> Option<String> {
    if !(message.starts_with("missing field") || message.starts_with("unknown field")) {
        return None;
    }
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// Parses a UUID from a path segment, naming the parameter when it is not one.
pub fn parse_uuid(field: &'static str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::validation(field, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        age: u8,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        tags: Vec<String>,
    }

    fn field_of(json: &str) -> Option<String> {
        match parse_json::<Body>(json.as_bytes()) {
            Err(ApiError::MalformedBody { field, .. }) => field,
            other => panic!("expected a malformed body for {json}, got {other:?}"),
        }
    }

    #[test]
    fn names_the_offending_field() {
        assert_eq!(
            field_of(r#"{"name": 1, "age": 3}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of(r#"{"name": "x", "age": 300}"#).as_deref(),
            Some("age")
        );
        assert_eq!(field_of(r#"{"name": "x"}"#).as_deref(), Some("age"));
        assert_eq!(
            field_of(r#"{"name": "x", "age": 1, "evil": true}"#).as_deref(),
            Some("evil")
        );
        assert_eq!(
            field_of(r#"{"name": "x", "age": 1, "inner": {"tags": [1]}}"#).as_deref(),
            Some("inner.tags[0]")
        );
        assert_eq!(field_of(r#"{"name": "#), None);
        assert_eq!(field_of(r#"[]"#), None);
        assert_eq!(field_of(r#"["x", 1]"#), None);
        assert_eq!(field_of(r#"  "#), None);
        assert_eq!(field_of(r#"{"name": "x", "age": 1} trailing"#), None);
    }

    #[test]
    fn uuids() {
        assert!(parse_uuid("id", "0190d8a4-7d2c-7c8e-9d35-3f1f0a2b4c5d").is_ok());
        for bad in [
            "",
            "1",
            "' OR 1=1 --",
            "0190d8a4-7d2c-7c8e-9d35-3f1f0a2b4c5dx",
        ] {
            assert!(matches!(
                parse_uuid("id", bad),
                Err(ApiError::Validation { .. })
            ));
        }
    }
}
