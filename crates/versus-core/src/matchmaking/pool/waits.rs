//! Estimated waits: an exponentially weighted time-to-match per rating bucket, which the
//! waiting report turns into each ticket's `estimated_wait_ms`.
//!
//! Owns the averages and the waits a tick records before it folds them in. It only ever sees
//! waits the tick computed from its `now` (no clock of its own), and the estimate never
//! depends on the order a tick matched in.

/// Exponentially weighted time-to-match per rating bucket: the "estimated wait". Buckets are a
/// dense run (`buckets[b − base]`) so that recording — once per matched ticket, 100k times in a
/// big tick — is an index, not a search. A tick's waits are summed per bucket and folded in
/// once, by [`Self::settle`], as a batch: `n` waits averaging `m` move the average as `n` single
/// updates all equal to `m` would. Recording is then two additions (no dependency from one
/// wait to the next), and the estimate does not depend on the order a tick matched in.
#[derive(Clone, Debug)]
pub(super) struct WaitStats {
    bucket_width: f64,
    base: i64,
    buckets: Vec<WaitBucket>,
    global: Option<f64>,
    /// Whether any wait was recorded since the last `settle`.
    pending: bool,
}

#[derive(Clone, Copy, Debug)]
struct WaitBucket {
    /// NaN until a wait is settled here.
    ewma: f64,
    /// Waits recorded since the last `settle`: their sum and count.
    sum: f64,
    count: u32,
}

impl WaitBucket {
    const EMPTY: Self = Self {
        ewma: f64::NAN,
        sum: 0.0,
        count: 0,
    };
}

const EWMA_ALPHA: f64 = 0.1;
/// Most buckets kept; ratings beyond share the outermost bucket on their side.
const MAX_BUCKETS: usize = 8192;

/// `average` after `count` waits whose mean is `mean` (NaN: no history yet).
fn fold(average: f64, mean: f64, count: u32) -> f64 {
    if average.is_nan() {
        return mean;
    }
    // Exactly α for one wait; the weight of `count` equal updates otherwise.
    let weight = if count == 1 {
        EWMA_ALPHA
    } else {
        1.0 - (1.0 - EWMA_ALPHA).powi(count.min(i32::MAX as u32) as i32)
    };
    average + weight * (mean - average)
}

impl WaitStats {
    pub(super) fn new(first_window: f64) -> Self {
        Self {
            // At least a rating point wide, so that a span of ratings fits in MAX_BUCKETS.
            bucket_width: first_window.max(1.0),
            base: 0,
            buckets: Vec::new(),
            global: None,
            pending: false,
        }
    }

    fn bucket(&self, rating: f64) -> i64 {
        // floor() without a libm call (the baseline x86-64 target has no rounding instruction).
        let q = rating / self.bucket_width;
        let t = q as i64;
        t.saturating_sub(i64::from((t as f64) > q))
    }

    /// Index of `rating`'s bucket, growing the run to hold it (up to [`MAX_BUCKETS`]).
    #[inline]
    fn slot(&mut self, rating: f64) -> usize {
        let b = self.bucket(rating);
        // Inside the run (the common case); a bucket below `base` wraps to a huge index.
        let i = b.wrapping_sub(self.base) as u64;
        if i < self.buckets.len() as u64 {
            return i as usize;
        }
        self.grow_to(b)
    }

    #[cold]
    fn grow_to(&mut self, b: i64) -> usize {
        // i128: bucket numbers of extreme ratings are near the ends of i64.
        let b = i128::from(b);
        if self.buckets.is_empty() {
            self.base = b as i64;
            self.buckets.push(WaitBucket::EMPTY);
            return 0;
        }
        let (base, len) = (i128::from(self.base), self.buckets.len() as i128);
        let room = (MAX_BUCKETS - self.buckets.len()) as i128;
        if b < base {
            let grow = (base - b).min(room) as usize;
            self.buckets
                .splice(0..0, std::iter::repeat_n(WaitBucket::EMPTY, grow));
            self.base -= grow as i64;
            return 0.max(b - i128::from(self.base)) as usize;
        }
        if b >= base + len {
            let grow = (b - base - len + 1).min(room) as usize;
            self.buckets
                .resize(self.buckets.len() + grow, WaitBucket::EMPTY);
            return ((b - base) as usize).min(self.buckets.len() - 1);
        }
        (b - base) as usize
    }

    /// Records a time to match; it counts once [`Self::settle`] runs.
    #[inline]
    pub(super) fn record(&mut self, rating: f64, ttm_ms: u64) {
        let i = self.slot(rating);
        let bucket = &mut self.buckets[i];
        // Through i64: one conversion instruction on baseline x86-64, where u64 takes several
        // (clamped: a wait is far below 2^63 ms unless a caller's clock is absurd).
        bucket.sum += ttm_ms.min(i64::MAX as u64) as i64 as f64;
        bucket.count += 1;
        self.pending = true;
    }

    /// Folds the waits recorded since the last call into the averages.
    pub(super) fn settle(&mut self) {
        if !std::mem::take(&mut self.pending) {
            return;
        }
        let (mut sum, mut count) = (0.0, 0u32);
        for b in self.buckets.iter_mut().filter(|b| b.count > 0) {
            b.ewma = fold(b.ewma, b.sum / f64::from(b.count), b.count);
            sum += b.sum;
            count = count.saturating_add(b.count);
            (b.sum, b.count) = (0.0, 0);
        }
        let mean = sum / f64::from(count);
        self.global = Some(fold(self.global.unwrap_or(f64::NAN), mean, count));
    }

    /// Expected remaining wait for a ticket at `rating` that has waited `waited_ms`.
    /// 0 when there is no history yet or the ticket is already past the typical wait.
    pub(super) fn estimate(&self, rating: f64, waited_ms: u64) -> u64 {
        let i = self.bucket(rating).wrapping_sub(self.base) as u64;
        let typical = usize::try_from(i)
            .ok()
            .and_then(|i| self.buckets.get(i))
            .map(|b| b.ewma)
            .filter(|x| !x.is_nan())
            .or(self.global)
            .unwrap_or(0.0);
        (typical - waited_ms as f64).max(0.0) as u64
    }

    /// Bytes the buckets hold on the heap (see [`QueueState::memory_bytes`](super::QueueState::memory_bytes)).
    pub(super) fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<WaitBucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_estimates_follow_each_rating_band() {
        let mut w = WaitStats::new(50.0);
        assert_eq!(w.estimate(1500.0, 0), 0, "no history yet");
        w.record(1500.0, 4_000);
        w.record(900.0, 30_000); // grows the run downwards
        w.record(2600.0, 10_000); // and upwards
        assert_eq!(w.estimate(1510.0, 0), 0, "counted once settled");
        w.settle();
        assert_eq!(w.estimate(1510.0, 1_000), 3_000);
        assert_eq!(w.estimate(910.0, 0), 30_000);
        assert_eq!(
            w.estimate(2649.0, 12_000),
            0,
            "already past the typical wait"
        );
        // A band with no history falls back to the global average.
        let global = w.global.unwrap();
        assert_eq!(global.round(), 14_667.0, "the mean of the first batch");
        assert_eq!(w.estimate(1200.0, 0), global as u64);
        // The same band again: an exponentially weighted average, not the last value.
        w.record(1500.0, 14_000);
        w.settle();
        assert_eq!(w.estimate(1500.0, 0), 5_000);
        // A batch of equal waits moves the average as that many single updates would.
        let mut one_by_one = w.clone();
        for _ in 0..3 {
            one_by_one.record(1500.0, 20_000);
            one_by_one.settle();
        }
        for _ in 0..3 {
            w.record(1500.0, 20_000);
        }
        w.settle();
        let (a, b) = (w.estimate(1500.0, 0), one_by_one.estimate(1500.0, 0));
        assert!(a.abs_diff(b) <= 1, "{a} vs {b}");
        // Far-out and negative ratings neither panic nor grow the run without bound.
        for r in [-1e12, -5.0, 1e12, f64::MAX, f64::MIN] {
            w.record(r, 1_000);
            w.settle();
            let _ = w.estimate(r, 0);
        }
        assert!(w.buckets.len() <= MAX_BUCKETS);
    }
}
