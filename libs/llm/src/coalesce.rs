//! How long tokens wait to be published together as one `response.delta`: the worker's flags, which the load
//! tool's synthetic responses (`loadtest`'s `bare` and `pushpin` baselines) take too, so both cut tokens alike.
//!
//! Every delta costs the same along the whole pipeline (JetStream store and republish, the edge's fan-out, one
//! frame per socket), whatever its size. When a worker streams many responses at once the system is busy, and a
//! wider window cuts events per second where it matters: the window grows linearly with the responses streaming
//! there, from `--coalesce-ms` (idle) to `--coalesce-max-ms` (at `--coalesce-busy-streams` and above). A lone
//! response keeps the idle window.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
pub struct Coalesce {
    /// Tokens are coalesced into one `response.delta` per this many milliseconds when the worker is idle.
    #[arg(long = "coalesce-ms", env = "RH_COALESCE_MS", default_value_t = 30)]
    pub base_ms: u64,
    /// The widest coalescing window, reached when `--coalesce-busy-streams` responses stream at once (the window
    /// grows linearly in between: fewer events per second when the system is busy).
    #[arg(long = "coalesce-max-ms", env = "RH_COALESCE_MAX_MS", default_value_t = 100)]
    pub max_ms: u64,
    /// Responses streaming at once at which the coalescing window reaches `--coalesce-max-ms`; 0: never widen.
    #[arg(long = "coalesce-busy-streams", env = "RH_COALESCE_BUSY_STREAMS", default_value_t = 500)]
    pub busy_at: u64,
}

impl Coalesce {
    /// The window for a delta when `streaming` responses are being generated at once.
    pub fn window(&self, streaming: u64) -> Duration {
        let base = Duration::from_millis(self.base_ms);
        let max = Duration::from_millis(self.max_ms);
        if self.busy_at == 0 || max <= base {
            return base;
        }
        let load = (streaming as f64 / self.busy_at as f64).min(1.0);
        base + (max - base).mul_f64(load)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        coalesce: Coalesce,
    }

    #[test]
    fn widens_with_load_and_stays_bounded() {
        let ms = Duration::from_millis;
        let c = Coalesce { base_ms: 30, max_ms: 100, busy_at: 100 };
        assert_eq!(c.window(0), ms(30));
        assert_eq!(c.window(1), Duration::from_micros(30_700));
        assert_eq!(c.window(50), ms(65));
        assert_eq!(c.window(100), ms(100));
        assert_eq!(c.window(5000), ms(100));
        assert_eq!(Coalesce { busy_at: 0, ..c }.window(5000), ms(30));
        assert_eq!(Coalesce { max_ms: 10, ..c }.window(5000), ms(30));
    }

    #[test]
    fn flags_and_defaults() {
        let d = Cli::try_parse_from(["x"]).map(|c| c.coalesce).ok();
        assert_eq!(d, Some(Coalesce { base_ms: 30, max_ms: 100, busy_at: 500 }));
        let c =
            Cli::try_parse_from(["x", "--coalesce-ms", "10", "--coalesce-busy-streams", "0"]).map(|c| c.coalesce).ok();
        assert_eq!(c, Some(Coalesce { base_ms: 10, max_ms: 100, busy_at: 0 }));
    }
}
