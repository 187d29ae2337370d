//! Team formation: split a set of tickets (parties kept whole) into teams of exactly
//! `team_size` players whose rating sums are as close as possible.
//!
//! Two teams (the common case): exhaustive over every split, via subset sums over a bitmask
//! (2^(n−1) masks for n tickets, n ≤ 20), so the split is optimal. More teams: depth-first
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
    sums: Vec<f64>,
    sizes: Vec<u8>,
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
pub(crate) fn partition(
    pieces: &[Piece],
    teams: usize,
    team_size: usize,
    scratch: &mut Scratch,
    out: &mut Vec<usize>,
) -> bool {
    out.clear();
    if teams == 2 && pieces.len() <= EXACT_TWO_TEAM_MAX {
        return two_teams(pieces, team_size, scratch, out);
    }
    if team_size == 1 {
        // Free-for-all: every piece is a team of one.
        out.extend(0..pieces.len());
        return pieces.len() == teams && pieces.iter().all(|p| p.size == 1);
    }
    dfs_teams(pieces, teams, team_size, scratch, out)
}

fn two_teams(pieces: &[Piece], team_size: usize, s: &mut Scratch, out: &mut Vec<usize>) -> bool {
    let n = pieces.len();
    if n == 0 {
        return false;
    }
    let total: f64 = pieces.iter().map(|p| p.sum).sum();
    // Piece 0 is always on team 0 (halves the search by symmetry); masks range over pieces 1..n.
    let rest = n - 1;
    let masks = 1usize << rest;
    s.sums.clear();
    s.sums.resize(masks, 0.0);
    s.sizes.clear();
    s.sizes.resize(masks, 0);
    let base_size = pieces[0].size;
    let base_sum = pieces[0].sum;
    let mut best: Option<(f64, usize)> = None;
    for m in 0..masks {
        if m > 0 {
            let low = m.trailing_zeros() as usize;
            let prev = m & (m - 1);
            s.sums[m] = s.sums[prev] + pieces[low + 1].sum;
            s.sizes[m] = s.sizes[prev] + pieces[low + 1].size as u8;
        }
        if usize::from(s.sizes[m]) + base_size == team_size {
            let a = s.sums[m] + base_sum;
            let gap = (2.0 * a - total).abs();
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, m));
                if gap == 0.0 {
                    break;
                }
            }
        }
    }
    let Some((_, m)) = best else { return false };
    out.push(0);
    for i in 0..rest {
        out.push(if m & (1 << i) != 0 { 0 } else { 1 });
    }
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
