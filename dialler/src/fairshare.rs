//! Weighted fair share of worker slots across running campaigns.
//!
//! Each campaign claims slots with a weight and a cap (its `max_concurrency`, or what it
//! can use at all: a campaign outside its calling window or out of numbers can only keep
//! the slots its live calls already hold). Slots are split in proportion to weight among
//! the campaigns still below their caps; a campaign that reaches its cap gives the rest
//! of its share back to the others ("water filling", the max-min fair allocation with
//! weights). Whole slots are handed out by largest remainder, ties to the heavier
//! campaign, then to the earlier one, so the split is deterministic.

/// One campaign's claim on the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Relative share, 1..=1000.
    pub weight: u32,
    /// Most slots it can use.
    pub cap: u32,
}

/// Splits `total` slots across `claims`; the result is in the same order. No campaign
/// gets more than its cap, and slots are left over only when every cap is reached.
pub fn split(total: u32, claims: &[Claim]) -> Vec<u32> {
    let mut given = vec![0u32; claims.len()];
    let mut left = total;
    loop {
        let open: Vec<usize> =
            (0..claims.len()).filter(|&i| given[i] < claims[i].cap && claims[i].weight > 0).collect();
        if left == 0 || open.is_empty() {
            return given;
        }
        let weights: u64 = open.iter().map(|&i| u64::from(claims[i].weight)).sum();
        // Proportional shares of what is left, capped.
        let mut shares: Vec<(usize, u32, u64)> = open
            .iter()
            .map(|&i| {
                let exact = u64::from(left) * u64::from(claims[i].weight);
                let whole = (exact / weights) as u32;
                let room = claims[i].cap - given[i];
                (i, whole.min(room), if whole >= room { 0 } else { exact % weights })
            })
            .collect();
        let handed: u32 = shares.iter().map(|s| s.1).sum();
        if handed == 0 {
            // Fewer slots than open campaigns can split whole: largest remainder first.
            shares.sort_by(|a, b| b.2.cmp(&a.2).then(claims[b.0].weight.cmp(&claims[a.0].weight)).then(a.0.cmp(&b.0)));
            for (i, _, _) in shares {
                if left == 0 {
                    break;
                }
                given[i] += 1;
                left -= 1;
            }
            continue;
        }
        for (i, n, _) in shares {
            given[i] += n;
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(weight: u32, cap: u32) -> Claim {
        Claim { weight, cap }
    }

    #[test]
    fn splits_by_weight() {
        assert_eq!(split(100, &[c(1, 1000), c(3, 1000)]), vec![25, 75]);
        assert_eq!(split(10, &[c(1, 1000), c(1, 1000), c(1, 1000)]).iter().sum::<u32>(), 10);
    }

    #[test]
    fn a_capped_campaign_gives_its_share_to_the_others() {
        assert_eq!(split(100, &[c(1, 10), c(1, 1000)]), vec![10, 90]);
        assert_eq!(split(100, &[c(5, 0), c(1, 1000), c(1, 1000)]), vec![0, 50, 50]);
    }

    #[test]
    fn never_exceeds_caps_or_total() {
        for total in [0, 1, 2, 7, 50, 199, 1000] {
            let claims = [c(1, 3), c(2, 40), c(7, 25), c(1, 1000)];
            let got = split(total, &claims);
            assert!(got.iter().sum::<u32>() <= total);
            for (g, cl) in got.iter().zip(&claims) {
                assert!(g <= &cl.cap);
            }
            let all_capped = got.iter().zip(&claims).all(|(g, cl)| *g == cl.cap);
            assert!(got.iter().sum::<u32>() == total || all_capped, "{total}: {got:?}");
        }
    }

    #[test]
    fn a_single_slot_goes_to_the_heaviest() {
        assert_eq!(split(1, &[c(1, 10), c(5, 10), c(2, 10)]), vec![0, 1, 0]);
    }
}
