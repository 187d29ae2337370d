//! RFC 7807 problem details, the body of every error response.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error, as `application/problem+json` (RFC 7807). `code` is stable and meant for programs;
/// `detail` is for people and may change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    #[schema(example = "https://versus.dev/problems/validation_failed")]
    pub type_uri: String,
    #[schema(example = "Request validation failed")]
    pub title: String,
    #[schema(example = 400)]
    pub status: u16,
    #[schema(example = "username: must be 3 to 32 characters long")]
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`, `unauthorized`, `rate_limited`.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// The offending field (a JSON path into the body, a path or query parameter), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "username")]
    pub field: Option<String>,
    /// The request id, also sent as the `x-request-id` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
