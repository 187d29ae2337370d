//! Seasons: when a queue's season ends, and how ratings carry into the next one.
//!
//! A schedule is a calendar, not a countdown: seasons end on the boundaries `start + k·length`
//! (or on one fixed `end`), so an early rollover by an admin or a server that was down across a
//! boundary does not shift every later season. Times are Unix seconds, handed in.

use crate::rating::PlayerRating;

/// When a queue's seasons end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// One season that never ends by itself (an admin may still roll it over).
    Endless,
    /// Seasons end at `start + k·length` for every whole `k ≥ 0`.
    Every { start: i64, length: i64 },
    /// The season that includes `end` ends there; later ones never end by themselves.
    Until { end: i64 },
}

impl Schedule {
    /// When a season that started at `started_at` ends: the first boundary after its start.
    pub fn end_of(&self, started_at: i64) -> Option<i64> {
        match *self {
            Schedule::Endless => None,
            Schedule::Every { start, length } => {
                let length = length.max(1);
                if started_at < start {
                    return Some(start);
                }
                let k = (started_at - start) / length + 1;
                Some(start.saturating_add(k.saturating_mul(length)))
            }
            Schedule::Until { end } => (started_at < end).then_some(end),
        }
    }

    /// Where the season that follows one ending at or before `now` starts: the last boundary
    /// not after `now` (a server down across several boundaries starts one new season, dated
    /// as the schedule says, not one per missed boundary).
    pub fn next_start(&self, ended_at: i64, now: i64) -> i64 {
        match *self {
            Schedule::Every { start, length } if now >= start => {
                let length = length.max(1);
                let boundary = start + (now - start) / length * length;
                boundary.max(ended_at.min(now))
            }
            _ => ended_at.min(now),
        }
    }
}

/// How ratings carry into a new season: each pulled toward the queue's initial rating by
/// `pull` (0 keeps it, 1 starts everyone afresh), its deviation widened toward the initial
/// deviation by `widen` (so the new season's first games move it more). Season counts (games,
/// wins, losses, draws) start at zero, so everyone plays placement games again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftReset {
    pub pull: f64,
    pub widen: f64,
}

impl SoftReset {
    /// Checks both shares are in `[0, 1]`; the error names the share.
    pub fn new(pull: f64, widen: f64) -> Result<Self, &'static str> {
        if !(0.0..=1.0).contains(&pull) {
            return Err("pull");
        }
        if !(0.0..=1.0).contains(&widen) {
            return Err("widen");
        }
        Ok(Self { pull, widen })
    }

    /// `rating` carried into the next season. A deviation already wider than the initial one
    /// stays as it is: a reset never makes a rating more certain.
    pub fn apply(&self, rating: PlayerRating, initial: PlayerRating) -> PlayerRating {
        let deviation = if rating.deviation < initial.deviation {
            rating.deviation + self.widen * (initial.deviation - rating.deviation)
        } else {
            rating.deviation
        };
        PlayerRating {
            rating: rating.rating + self.pull * (initial.rating - rating.rating),
            deviation,
            volatility: rating.volatility,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn seasons_end_on_the_calendar_whenever_they_started() {
        let s = Schedule::Every {
            start: 100 * DAY,
            length: 30 * DAY,
        };
        // Before the first start: a pre-season ending at the start.
        assert_eq!(s.end_of(10 * DAY), Some(100 * DAY));
        assert_eq!(s.end_of(100 * DAY), Some(130 * DAY));
        // Rolled over early by an admin on day 115: still ends on day 130.
        assert_eq!(s.end_of(115 * DAY), Some(130 * DAY));
        assert_eq!(s.end_of(130 * DAY), Some(160 * DAY));
    }

    #[test]
    fn a_server_down_across_boundaries_starts_one_season_at_the_last_boundary() {
        let s = Schedule::Every {
            start: 100 * DAY,
            length: 30 * DAY,
        };
        // The season ended on day 130; the server came back on day 200.
        let start = s.next_start(130 * DAY, 200 * DAY);
        assert_eq!(start, 190 * DAY);
        assert_eq!(s.end_of(start), Some(220 * DAY));
        // On time: the new season starts where the old one ended.
        assert_eq!(s.next_start(130 * DAY, 130 * DAY), 130 * DAY);
        // An admin's early rollover starts now.
        assert_eq!(s.next_start(115 * DAY, 115 * DAY), 115 * DAY);
    }

    #[test]
    fn a_fixed_end_ends_one_season() {
        let s = Schedule::Until { end: 50 * DAY };
        assert_eq!(s.end_of(DAY), Some(50 * DAY));
        assert_eq!(s.end_of(50 * DAY), None);
        assert_eq!(Schedule::Endless.end_of(DAY), None);
    }

    #[test]
    fn a_soft_reset_pulls_toward_the_initial_rating_and_widens_deviation() {
        let initial = PlayerRating::new(1500.0, 350.0);
        let reset = SoftReset::new(0.5, 0.25).unwrap();
        let strong = reset.apply(PlayerRating::new(2100.0, 50.0), initial);
        assert_eq!(strong.rating, 1800.0);
        assert_eq!(strong.deviation, 125.0);
        let weak = reset.apply(PlayerRating::new(1100.0, 400.0), initial);
        assert_eq!(weak.rating, 1300.0);
        assert_eq!(weak.deviation, 400.0, "never narrower");
        let keep = SoftReset::new(0.0, 0.0).unwrap();
        assert_eq!(
            keep.apply(PlayerRating::new(2100.0, 50.0), initial),
            PlayerRating::new(2100.0, 50.0)
        );
        assert_eq!(SoftReset::new(1.5, 0.0), Err("pull"));
        assert_eq!(SoftReset::new(0.5, -0.1), Err("widen"));
    }
}
