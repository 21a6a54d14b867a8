//! Backoff between attempts.

use std::time::Duration;

use rand::Rng;

use crate::job::Backoff;

/// Delay before the attempt after `attempt` (1-based) failed.
///
/// Exponential: `delay · 2^(attempt-1)`, capped at `max_delay`; with jitter the
/// delay is drawn from `[d/2, d]` ("equal jitter"), so retries of many jobs that
/// failed together spread out while the gaps of one job still grow.
pub fn backoff_delay(backoff: &Backoff, attempt: u32) -> Duration {
    backoff_delay_with(backoff, attempt, &mut rand::rng())
}

pub fn backoff_delay_with(backoff: &Backoff, attempt: u32, rng: &mut impl Rng) -> Duration {
    let ms = match *backoff {
        Backoff::Fixed { delay_ms } => delay_ms,
        Backoff::Exponential {
            delay_ms,
            max_delay_ms,
            jitter,
        } => {
            let exp = attempt.saturating_sub(1).min(62);
            let full = delay_ms.saturating_mul(1u64 << exp).min(max_delay_ms);
            if jitter && full > 1 {
                full / 2 + rng.random_range(0..=full - full / 2)
            } else {
                full
            }
        }
    };
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn exponential_doubles_and_caps() {
        let b = Backoff::Exponential {
            delay_ms: 100,
            max_delay_ms: 1_000,
            jitter: false,
        };
        let got: Vec<u64> = (1..=6)
            .map(|a| backoff_delay(&b, a).as_millis() as u64)
            .collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let b = Backoff::Exponential {
            delay_ms: 1_000,
            max_delay_ms: 60_000,
            jitter: true,
        };
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..=5 {
            let full = 1_000u64 << (attempt - 1);
            for _ in 0..200 {
                let d = backoff_delay_with(&b, attempt, &mut rng).as_millis() as u64;
                assert!(
                    (full / 2..=full).contains(&d),
                    "attempt {attempt}: {d} outside [{}, {full}]",
                    full / 2
                );
            }
        }
    }

    #[test]
    fn fixed_is_fixed_and_huge_attempts_do_not_overflow() {
        assert_eq!(
            backoff_delay(&Backoff::Fixed { delay_ms: 250 }, 9),
            Duration::from_millis(250)
        );
        let b = Backoff::Exponential {
            delay_ms: u64::MAX / 2,
            max_delay_ms: u64::MAX,
            jitter: false,
        };
        assert_eq!(backoff_delay(&b, 1_000), Duration::from_millis(u64::MAX));
    }
}
