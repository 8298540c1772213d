//! [`KeyRate`]: at most N key-store calls per second across every key manager of a session
//! (`Session::with_key_rate`; `hyok reencrypt --key-rate`). Callers wait asynchronously
//! (tokio's timer), in the order they asked.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use hyok_keystore::pace::Pace;
use tokio::time::Instant;

use crate::{Error, Result};

/// A shared schedule of key-store call starts, `1 / per_sec` apart.
#[derive(Debug)]
pub struct KeyRate {
    gap: Duration,
    next: Mutex<Option<Instant>>,
}

impl KeyRate {
    /// At most `per_sec` calls per second (a positive, finite number; fractions allowed).
    pub fn new(per_sec: f64) -> Result<Self> {
        if !(per_sec.is_finite() && per_sec > 0.0 && per_sec <= 1e6) {
            return Err(Error::Config(format!(
                "key-store rate {per_sec}: use a number of calls per second above 0 and at most 1000000"
            )));
        }
        Ok(Self {
            gap: Duration::from_secs_f64(1.0 / per_sec),
            next: Mutex::new(None),
        })
    }

    /// The start time of the next call, reserving it.
    fn reserve(&self) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let due = next.map_or(now, |n| n.max(now));
        *next = Some(due + self.gap);
        due
    }
}

#[async_trait]
impl Pace for KeyRate {
    async fn wait(&self) {
        tokio::time::sleep_until(self.reserve()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_checked() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e6] {
            assert!(KeyRate::new(bad).is_err(), "{bad}");
        }
        assert!(KeyRate::new(0.5).is_ok());
    }

    /// The schedule itself (no clock is read in the assertion): n reservations made at once
    /// are `gap` apart.
    #[test]
    fn reservations_are_a_gap_apart() {
        let r = KeyRate::new(4.0).unwrap();
        let times: Vec<Instant> = (0..5).map(|_| r.reserve()).collect();
        for w in times.windows(2) {
            assert!(
                w[1] - w[0] >= Duration::from_millis(250),
                "{:?}",
                w[1] - w[0]
            );
        }
    }
}
