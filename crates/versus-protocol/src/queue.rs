//! Matchmaking queue bodies (REST) — also the `data` of the WebSocket `queue.join` message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/v1/queue/join`, and the `data` of a WebSocket `queue.join`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinQueueRequest {
    /// A configured queue, e.g. `ranked-1v1`.
    #[schema(example = "ranked-1v1")]
    pub queue: String,
    /// Round-trip latency in milliseconds to each region, as the client measured it. Regions
    /// left out fall back to the player's preferences (acceptable at the queue's budget) or, with
    /// no preferences, are treated as unreachable unless no latency is given at all.
    #[serde(default, deserialize_with = "whole_numbers")]
    #[schema(example = json!({"eu": 35, "na": 110}))]
    pub latencies: BTreeMap<String, u32>,
    /// Queue the whole party (its leader only, once every member is ready). The ticket takes
    /// each member's rating and, per region, the slowest member's latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party_id: Option<Uuid>,
}

/// Latencies as JSON Schema counts integers: `35` and `35.0` alike (a client's JSON encoder may
/// write either); a fraction, a negative or a value past `u32` is refused (naming the region).
pub(crate) fn whole_numbers<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, u32>, D::Error> {
    struct Millis(u32);

    impl<'de> Deserialize<'de> for Millis {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(MillisVisitor)
        }
    }

    struct MillisVisitor;

    impl serde::de::Visitor<'_> for MillisVisitor {
        type Value = Millis;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a whole number of milliseconds from 0 to 4294967295")
        }

        fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Millis, E> {
            u32::try_from(ms)
                .map(Millis)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(ms), &self))
        }

        fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Millis, E> {
            u64::try_from(ms)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(ms), &self))
                .and_then(|ms| self.visit_u64(ms))
        }

        fn visit_f64<E: serde::de::Error>(self, ms: f64) -> Result<Millis, E> {
            if ms.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&ms) {
                Ok(Millis(ms as u32))
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(ms), &self))
            }
        }
    }

    let raw = BTreeMap::<String, Millis>::deserialize(deserializer)?;
    Ok(raw.into_iter().map(|(region, ms)| (region, ms.0)).collect())
}

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    Searching,
    Matched,
    Cancelled,
    Expired,
}

/// A matchmaking ticket as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    pub ticket_id: Uuid,
    pub queue: String,
    pub state: TicketState,
    /// 1 = the next ticket to pick; present while searching.
    pub position: Option<u64>,
    /// Expected remaining wait in seconds, from recent time-to-match at this rating.
    pub estimated_wait_s: Option<f64>,
    /// Seconds since the ticket was created.
    pub elapsed_s: f64,
    /// The match the ticket ended in, once matched.
    pub match_id: Option<Uuid>,
}

/// `PUT /api/v1/matchmaking/preferences`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchmakingPreferences {
    /// Regions the player is willing to play in, best first. Empty: any region within budget.
    #[serde(default)]
    #[schema(example = json!(["eu", "na"]))]
    pub regions: Vec<String>,
    /// Queues (modes) the player is interested in. Informational for now.
    #[serde(default)]
    #[schema(example = json!(["ranked-1v1"]))]
    pub modes: Vec<String>,
}

/// `GET /api/v1/matchmaking/statistics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MatchmakingStatistics {
    pub queues: Vec<QueueStatistics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueStatistics {
    pub queue: String,
    pub searching_tickets: u64,
    pub searching_players: u64,
    /// Matches formed over the last minute.
    pub matches_per_minute: f64,
    /// Time to match over the recent window (seconds); `None` before the first match.
    pub ttm_p50_s: Option<f64>,
    pub ttm_p95_s: Option<f64>,
    pub matches_total: u64,
    /// Matches by the average rating of their players, in bands of `band_width`.
    pub by_rating_band: Vec<RatingBandCount>,
    /// Matches by the region they were placed in.
    pub by_region: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingBandCount {
    /// Inclusive lower bound of the band.
    pub from: f64,
    /// Exclusive upper bound.
    pub to: f64,
    pub matches: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_whole_milliseconds_however_written() {
        let parse = |latencies: &str| {
            serde_json::from_str::<JoinQueueRequest>(&format!(
                r#"{{"queue": "q", "latencies": {latencies}}}"#
            ))
            .map(|r| r.latencies.into_iter().collect::<Vec<_>>())
        };
        assert_eq!(
            parse(r#"{"eu": 35, "na": 110.0}"#).unwrap(),
            [("eu".to_owned(), 35), ("na".to_owned(), 110)]
        );
        for bad in [
            r#"{"eu": 1.5}"#,
            r#"{"eu": -5}"#,
            r#"{"eu": 4294967296}"#,
            r#"{"eu": "x"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
