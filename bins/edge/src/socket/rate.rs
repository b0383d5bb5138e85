//! Commands per socket per second: a token bucket per socket, held by the socket's reader. A socket lives on one
//! edge, so its count needs no sharing between replicas (unlike the api's limits, which live in PostgreSQL); a
//! client that reconnects elsewhere starts a new socket, and what its commands cost the api (AI replies) is
//! limited there, across replicas.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct CommandRate {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    at: Instant,
}

impl CommandRate {
    /// A full bucket of `burst` commands refilled at `per_sec`; a burst of 0 never refuses.
    pub fn new(burst: u32, per_sec: f64, now: Instant) -> Self {
        let burst = f64::from(burst);
        CommandRate { burst, per_sec: per_sec.max(0.0), tokens: burst, at: now }
    }

    /// Spends one command at `now`, or tells how long until the next one is allowed.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.burst == 0.0 {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = if self.per_sec > 0.0 { (1.0 - self.tokens) / self.per_sec } else { 86_400.0 };
        Err(Duration::from_secs_f64(wait.clamp(0.001, 86_400.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut rate = CommandRate::new(2, 4.0, t0);
        assert!(rate.take(t0).is_ok() && rate.take(t0).is_ok());
        assert_eq!(rate.take(t0), Err(Duration::from_millis(250)));
        assert!(rate.take(t0 + Duration::from_millis(250)).is_ok());
        assert!(rate.take(t0 + Duration::from_millis(250)).is_err());
        // A long pause refills no more than the burst.
        let later = t0 + Duration::from_secs(60);
        assert!(rate.take(later).is_ok() && rate.take(later).is_ok() && rate.take(later).is_err());
    }

    #[test]
    fn a_burst_of_zero_is_off() {
        let t0 = Instant::now();
        let mut rate = CommandRate::new(0, 0.0, t0);
        assert!((0..1000).all(|_| rate.take(t0).is_ok()));
    }
}
