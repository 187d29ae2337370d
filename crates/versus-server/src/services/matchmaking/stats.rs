//! Per-queue statistics for `GET /api/v1/matchmaking/statistics`: matches per minute and
//! time-to-match over a sliding window, and match counts by rating band and region.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use versus_protocol::queue::{QueueStatistics, RatingBandCount};

const WINDOW: Duration = Duration::from_secs(600);
const BAND_WIDTH: f64 = 100.0;

pub fn empty(queue: &str) -> QueueStatistics {
    QueueStatistics {
        queue: queue.to_owned(),
        searching_tickets: 0,
        searching_players: 0,
        matches_per_minute: 0.0,
        ttm_p50_s: None,
        ttm_p95_s: None,
        matches_total: 0,
        by_rating_band: Vec::new(),
        by_region: BTreeMap::new(),
    }
}

pub struct Collector {
    queue: String,
    waits: VecDeque<(Instant, Duration)>,
    matches: VecDeque<Instant>,
    matches_total: u64,
    bands: BTreeMap<i64, u64>,
    regions: BTreeMap<String, u64>,
}

impl Collector {
    pub fn new(queue: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            waits: VecDeque::new(),
            matches: VecDeque::new(),
            matches_total: 0,
            bands: BTreeMap::new(),
            regions: BTreeMap::new(),
        }
    }

    pub fn record_wait(&mut self, at: Instant, waited: Duration) {
        self.waits.push_back((at, waited));
    }

    pub fn record_match(&mut self, at: Instant, mean_rating: f64, region: &str) {
        self.matches.push_back(at);
        self.matches_total += 1;
        *self
            .bands
            .entry((mean_rating / BAND_WIDTH).floor() as i64)
            .or_default() += 1;
        *self.regions.entry(region.to_owned()).or_default() += 1;
    }

    pub fn snapshot(&mut self, searching_tickets: u64, searching_players: u64) -> QueueStatistics {
        let now = Instant::now();
        while self
            .waits
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            self.waits.pop_front();
        }
        while self
            .matches
            .front()
            .is_some_and(|at| now.duration_since(*at) > Duration::from_secs(60))
        {
            self.matches.pop_front();
        }
        let mut waits: Vec<f64> = self.waits.iter().map(|(_, w)| w.as_secs_f64()).collect();
        waits.sort_by(f64::total_cmp);
        QueueStatistics {
            queue: self.queue.clone(),
            searching_tickets,
            searching_players,
            matches_per_minute: self.matches.len() as f64,
            ttm_p50_s: percentile(&waits, 0.50),
            ttm_p95_s: percentile(&waits, 0.95),
            matches_total: self.matches_total,
            by_rating_band: self
                .bands
                .iter()
                .map(|(band, matches)| RatingBandCount {
                    from: *band as f64 * BAND_WIDTH,
                    to: (*band + 1) as f64 * BAND_WIDTH,
                    matches: *matches,
                })
                .collect(),
            by_region: self.regions.clone(),
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(50.0));
        assert_eq!(percentile(&values, 0.95), Some(95.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[3.0], 0.95), Some(3.0));
    }

    #[test]
    fn bands_and_regions() {
        let mut collector = Collector::new("q");
        let now = Instant::now();
        collector.record_match(now, 1450.0, "eu");
        collector.record_match(now, 1499.9, "eu");
        collector.record_match(now, 1500.0, "na");
        collector.record_wait(now, Duration::from_secs(2));
        let stats = collector.snapshot(3, 4);
        assert_eq!(stats.matches_total, 3);
        assert_eq!(stats.matches_per_minute, 3.0);
        assert_eq!(stats.by_rating_band.len(), 2);
        assert_eq!(
            (
                stats.by_rating_band[0].from,
                stats.by_rating_band[0].matches
            ),
            (1400.0, 2)
        );
        assert_eq!(stats.by_region["eu"], 2);
        assert_eq!(stats.ttm_p50_s, Some(2.0));
    }
}
