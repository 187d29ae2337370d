//! Team formation: split a set of tickets (parties kept whole) into teams of exactly
//! `team_size` players whose rating sums are as close as possible.
//!
//! Two teams (the common case): exhaustive over every split that fits (depth-first, pruned by
//! team size; n ≤ 20 tickets), so the split is optimal. More teams: depth-first
//! assignment with symmetry breaking under a node budget, best split found wins.

/// One ticket as team formation sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Piece {
    pub size: usize,
    pub sum: f64,
}

/// Reusable buffers (kept in the queue state so a tick does not allocate per match).
#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    order: Vec<usize>,
    assign: Vec<usize>,
    best: Vec<usize>,
    team_sum: Vec<f64>,
    team_left: Vec<usize>,
}

const EXACT_TWO_TEAM_MAX: usize = 20;
const DFS_NODE_BUDGET: usize = 20_000;

/// Team index per piece, or `None` if the pieces cannot be packed into `teams` teams of exactly
/// `team_size` players. The caller guarantees the sizes add up to `teams · team_size`.
// Out of line, as it was while the tick was one file: sharing a codegen unit with the split
// tick's group search, LLVM inlines it into that recursion and the 5v5 tick's instruction count
// moves (BENCHMARKS.md, instruction counts).
#[inline(never)]
pub(crate) fn partition(
    pieces: &[Piece],
    teams: usize,
    team_size: usize,
    scratch: &mut Scratch,
    out: &mut Vec<usize>,
) -> bool {
    out.clear();
    if teams == 2 && pieces.len() <= EXACT_TWO_TEAM_MAX {
        return two_teams(pieces, team_size, out);
    }
    if team_size == 1 {
        // Free-for-all: every piece is a team of one.
        out.extend(0..pieces.len());
        return pieces.len() == teams && pieces.iter().all(|p| p.size == 1);
    }
    dfs_teams(pieces, teams, team_size, scratch, out)
}

/// Whether `teams` teams of exactly `team_size` players could be packed from pieces (parties)
/// of which `counts[k]` have `k` players, one of them of size `size`. A necessary condition for
/// any match holding a ticket of that size, so a tick can skip such tickets when it fails.
/// Errs towards `true`: past a node budget it stops looking and answers "maybe".
pub(crate) fn can_pack(counts: &[u32], size: usize, teams: usize, team_size: usize) -> bool {
    if size == 0 || size > team_size || counts.get(size).is_none_or(|&c| c == 0) {
        return false;
    }
    let mut left: Vec<u32> = (0..=team_size)
        .map(|k| counts.get(k).copied().unwrap_or(0))
        .collect();
    left[size] -= 1;
    // Team 0 holds the `size` piece; each team takes its other pieces largest first (one order
    // per multiset), teams filled one after another.
    fn fill(
        left: &mut [u32],
        room: usize,
        largest: usize,
        teams_after: usize,
        team_size: usize,
        budget: &mut usize,
    ) -> bool {
        if *budget == 0 {
            return true;
        }
        *budget -= 1;
        if room == 0 {
            return teams_after == 0
                || fill(
                    left,
                    team_size,
                    team_size,
                    teams_after - 1,
                    team_size,
                    budget,
                );
        }
        for k in (1..=room.min(largest)).rev() {
            if left[k] > 0 {
                left[k] -= 1;
                let ok = fill(left, room - k, k, teams_after, team_size, budget);
                left[k] += 1;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    let mut budget = 10_000;
    fill(
        &mut left,
        team_size - size,
        team_size,
        teams - 1,
        team_size,
        &mut budget,
    )
}

fn two_teams(pieces: &[Piece], team_size: usize, out: &mut Vec<usize>) -> bool {
    let n = pieces.len();
    if n == 0 || pieces[0].size > team_size {
        return false;
    }
    let total: f64 = pieces.iter().map(|p| p.sum).sum();
    // Piece 0 is always on team 0 (halves the search by symmetry). Depth-first over the other
    // pieces, in order, each joining team 0 or not; a branch stops as soon as team 0 is over
    // size or the pieces left cannot fill it, so only fitting subsets are visited.
    struct Search<'a> {
        pieces: &'a [Piece],
        team_size: usize,
        total: f64,
        /// Players in pieces[i..].
        left: [usize; EXACT_TWO_TEAM_MAX + 1],
        best: Option<(f64, u32)>,
    }
    impl Search<'_> {
        /// A full team 0 of rating sum `sum`; true when the split is perfect.
        fn leaf(&mut self, sum: f64, mask: u32) -> bool {
            let gap = (2.0 * sum - self.total).abs();
            if self.best.is_none_or(|(g, _)| gap < g) {
                self.best = Some((gap, mask));
            }
            gap == 0.0
        }
        /// Team 0 holds `size` players (below `team_size`); pieces from `i` on are undecided.
        fn go(&mut self, i: usize, size: usize, sum: f64, mask: u32) -> bool {
            if i == self.pieces.len() || size + self.left[i] < self.team_size {
                return false;
            }
            let p = self.pieces[i];
            let (with, with_sum, with_mask) = (size + p.size, sum + p.sum, mask | 1 << i);
            // A piece that completes the team is scored here rather than in a call of its
            // own: about half the calls of the search.
            if with == self.team_size {
                if self.leaf(with_sum, with_mask) {
                    return true;
                }
            } else if with < self.team_size && self.go(i + 1, with, with_sum, with_mask) {
                return true;
            }
            self.go(i + 1, size, sum, mask)
        }
    }
    let mut search = Search {
        pieces,
        team_size,
        total,
        left: [0; EXACT_TWO_TEAM_MAX + 1],
        best: None,
    };
    for i in (0..n).rev() {
        search.left[i] = search.left[i + 1] + pieces[i].size;
    }
    if pieces[0].size == team_size {
        search.leaf(pieces[0].sum, 1);
    } else {
        search.go(1, pieces[0].size, pieces[0].sum, 1);
    }
    let Some((_, mask)) = search.best else {
        return false;
    };
    out.extend((0..n).map(|i| if mask & (1 << i) != 0 { 0 } else { 1 }));
    true
}

fn dfs_teams(
    pieces: &[Piece],
    teams: usize,
    team_size: usize,
    s: &mut Scratch,
    out: &mut Vec<usize>,
) -> bool {
    let n = pieces.len();
    s.order.clear();
    s.order.extend(0..n);
    // Big parties first: they constrain packing most; then by rating sum for balance.
    s.order.sort_by(|&a, &b| {
        pieces[b]
            .size
            .cmp(&pieces[a].size)
            .then(pieces[b].sum.total_cmp(&pieces[a].sum))
    });
    s.assign.clear();
    s.assign.resize(n, usize::MAX);
    s.best.clear();
    s.team_sum.clear();
    s.team_sum.resize(teams, 0.0);
    s.team_left.clear();
    s.team_left.resize(teams, team_size);
    let mut best_spread = f64::INFINITY;
    let mut nodes = 0usize;
    dfs(pieces, team_size, 0, s, &mut best_spread, &mut nodes);
    if s.best.is_empty() {
        return false;
    }
    out.extend_from_slice(&s.best);
    true
}

fn dfs(
    pieces: &[Piece],
    team_size: usize,
    depth: usize,
    s: &mut Scratch,
    best: &mut f64,
    nodes: &mut usize,
) {
    *nodes += 1;
    if *nodes > DFS_NODE_BUDGET {
        return;
    }
    if depth == s.order.len() {
        let max = s.team_sum.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let min = s.team_sum.iter().cloned().fold(f64::INFINITY, f64::min);
        if max - min < *best {
            *best = max - min;
            s.best.clear();
            s.best.extend_from_slice(&s.assign);
        }
        return;
    }
    let piece = s.order[depth];
    let size = pieces[piece].size;
    // Try the emptiest-by-rating team first: good splits are found early.
    let teams = s.team_sum.len();
    let mut tried_empty = false;
    let mut candidates: [usize; 64] = [0; 64];
    let mut k = 0;
    for t in 0..teams {
        if s.team_left[t] >= size {
            candidates[k] = t;
            k += 1;
        }
    }
    let cands = &mut candidates[..k];
    cands.sort_by(|&a, &b| s.team_sum[a].total_cmp(&s.team_sum[b]));
    for &t in cands.iter() {
        if s.team_left[t] == team_size {
            // All empty teams are interchangeable: try only one.
            if tried_empty {
                continue;
            }
            tried_empty = true;
        }
        s.team_left[t] -= size;
        s.team_sum[t] += pieces[piece].sum;
        s.assign[piece] = t;
        dfs(pieces, team_size, depth + 1, s, best, nodes);
        s.team_left[t] += size;
        s.team_sum[t] -= pieces[piece].sum;
        s.assign[piece] = usize::MAX;
        if *best == 0.0 || *nodes > DFS_NODE_BUDGET {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pieces: &[(usize, f64)], teams: usize, team_size: usize) -> Option<Vec<usize>> {
        let pieces: Vec<Piece> = pieces
            .iter()
            .map(|&(size, sum)| Piece { size, sum })
            .collect();
        let mut out = Vec::new();
        partition(&pieces, teams, team_size, &mut Scratch::default(), &mut out).then_some(out)
    }

    fn sums(pieces: &[(usize, f64)], assign: &[usize], teams: usize) -> Vec<f64> {
        let mut s = vec![0.0; teams];
        for (p, &t) in pieces.iter().zip(assign) {
            s[t] += p.1;
        }
        s
    }

    #[test]
    fn two_teams_optimal_split_of_solos() {
        let p = [(1, 10.0), (1, 9.0), (1, 8.0), (1, 7.0), (1, 1.0), (1, 1.0)];
        let a = check(&p, 2, 3).unwrap();
        let s = sums(&p, &a, 2);
        // 10+7+1 = 18 = 9+8+1
        assert_eq!(s[0], s[1]);
    }

    /// `can_pack` against brute force: every multiset of pieces drawn from small counts.
    #[test]
    fn can_pack_agrees_with_brute_force() {
        // Brute force: try every assignment of every subset of the pieces to teams.
        fn brute(pieces: &[usize], size: usize, teams: usize, team_size: usize) -> bool {
            let n = pieces.len();
            let mut assign = vec![0usize; n];
            // team index per piece, `teams` = unused.
            loop {
                let mut fill = vec![0usize; teams];
                let mut has = false;
                for (i, &t) in assign.iter().enumerate() {
                    if t < teams {
                        fill[t] += pieces[i];
                        has |= pieces[i] == size;
                    }
                }
                if has && fill.iter().all(|&f| f == team_size) {
                    return true;
                }
                let mut i = 0;
                loop {
                    if i == n {
                        return false;
                    }
                    assign[i] += 1;
                    if assign[i] <= teams {
                        break;
                    }
                    assign[i] = 0;
                    i += 1;
                }
            }
        }
        for (teams, team_size) in [(2, 3), (2, 4), (3, 2), (2, 5)] {
            // Up to 7 pieces of sizes 1..=team_size, enumerated by counts.
            let mut counts = vec![0u32; team_size + 1];
            'next: loop {
                let pieces: Vec<usize> = (1..=team_size)
                    .flat_map(|k| std::iter::repeat_n(k, counts[k] as usize))
                    .collect();
                if pieces.len() <= 7 {
                    for size in 1..=team_size {
                        assert_eq!(
                            can_pack(&counts, size, teams, team_size),
                            brute(&pieces, size, teams, team_size),
                            "{teams}×{team_size}, counts {counts:?}, size {size}"
                        );
                    }
                }
                let mut k = 1;
                loop {
                    if k > team_size {
                        break 'next;
                    }
                    counts[k] += 1;
                    if counts[k] <= 3 {
                        break;
                    }
                    counts[k] = 0;
                    k += 1;
                }
            }
        }
    }

    #[test]
    fn two_team_split_is_optimal() {
        // Against brute force over every assignment, on pseudo-random parties.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        // Team sizes up to 8: splits of up to 16 tickets.
        for _ in 0..200 {
            let team_size = 1 + next(8) as usize;
            let mut pieces = Vec::new();
            let mut left = 2 * team_size;
            while left > 0 {
                let size = 1 + next(left.min(team_size) as u64) as usize;
                pieces.push((size, size as f64 * (1000.0 + next(1000) as f64)));
                left -= size;
            }
            let n = pieces.len();
            let mut best: Option<f64> = None;
            for m in 0..1u32 << n {
                let (mut size, mut sum) = (0, 0.0);
                for (i, p) in pieces.iter().enumerate() {
                    if m & 1 << i != 0 {
                        size += p.0;
                        sum += p.1;
                    }
                }
                if size == team_size {
                    let total: f64 = pieces.iter().map(|p| p.1).sum();
                    let gap = (2.0 * sum - total).abs();
                    best = Some(best.map_or(gap, |b: f64| b.min(gap)));
                }
            }
            match (check(&pieces, 2, team_size), best) {
                (Some(a), Some(b)) => {
                    let s = sums(&pieces, &a, 2);
                    assert!(
                        ((s[0] - s[1]).abs() - b).abs() < 1e-6,
                        "{pieces:?}: {s:?} vs {b}"
                    );
                }
                (None, None) => {}
                (got, want) => panic!("{pieces:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn parties_force_packing() {
        // 5v5: a 4-stack needs exactly one solo with it.
        let p = [(4, 400.0), (3, 300.0), (2, 200.0), (1, 100.0)];
        let a = check(&p, 2, 5).unwrap();
        assert_eq!(a[0], a[3]);
        assert_eq!(a[1], a[2]);
        assert!(check(&[(4, 1.0), (4, 1.0), (2, 1.0)], 2, 5).is_none());
    }

    #[test]
    fn several_teams_of_two() {
        let p = [
            (2, 20.0),
            (1, 11.0),
            (1, 9.0),
            (1, 12.0),
            (1, 8.0),
            (2, 19.0),
        ];
        let a = check(&p, 4, 2).unwrap();
        let s = sums(&p, &a, 4);
        let mut sizes = [0; 4];
        for (x, &t) in p.iter().zip(&a) {
            sizes[t] += x.0;
        }
        assert_eq!(sizes, [2, 2, 2, 2]);
        let spread =
            s.iter().cloned().fold(f64::MIN, f64::max) - s.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread <= 1.0, "{s:?}");
    }
}
