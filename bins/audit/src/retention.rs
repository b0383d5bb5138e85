//! How close the transcript is to losing an event, and whether it lost one (`nats/README.md`, "Alerts").
//!
//! An event is safe once JetStream has copied it from `RH_CONV` into `RH_AUDIT`: nothing leaves `RH_AUDIT` but by
//! the writer's ack. It is at risk only while it waits to be copied, which happens when `RH_AUDIT` is full (the
//! writer cannot write, and discard new pauses the copy): `RH_CONV` keeps dropping its oldest messages, by age
//! and by size, and the oldest uncopied event moves towards that edge. This module measures that distance and
//! notices when an event it was watching was dropped before it was copied: a gap no retry can fill.

use anyhow::Context as _;
use async_nats::jetstream::{self, stream::Stream};
use rh_protocol::subjects;
use std::time::Duration;

/// One look at both streams.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reading {
    /// Events in `RH_AUDIT`: copied, not yet written.
    pub backlog: u64,
    /// `RH_AUDIT`'s bytes over its max bytes: at 1 the copy pauses.
    pub fill: f64,
    /// Age of the oldest event not yet written, seconds.
    pub oldest_unwritten_secs: f64,
    /// Events of `RH_CONV` not copied yet (the source's lag).
    pub uncopied: u64,
    /// How much of `RH_CONV`'s retention the oldest uncopied event has used up, by age or by bytes: at 1 it is
    /// dropped. 0 when everything is copied.
    pub risk: f64,
    /// Events found dropped before they were copied since the last reading (at least one per finding).
    pub new_gaps: u64,
}

pub struct RetentionWatch {
    conv: Stream,
    audit: Stream,
    /// `RH_CONV` seq of the oldest uncopied event at the last reading.
    watched: Option<u64>,
}

impl RetentionWatch {
    pub async fn new(js: &jetstream::Context) -> anyhow::Result<Self> {
        let conv = js.get_stream(subjects::STREAM_CONV).await.context("stream RH_CONV")?;
        let audit = js.get_stream(subjects::STREAM_AUDIT).await.context("stream RH_AUDIT")?;
        Ok(RetentionWatch { conv, audit, watched: None })
    }

    /// Reads both streams. `last_written` is the `RH_CONV` seq of the last event the writer committed (0 if none
    /// yet), the position to look from when `RH_AUDIT` is empty.
    pub async fn read(&mut self, last_written: u64) -> anyhow::Result<Reading> {
        let info = self.audit.info().await.context("RH_AUDIT info")?.clone();
        let state = &info.state;
        let mut reading = Reading {
            backlog: state.messages,
            fill: ratio(state.bytes as f64, info.config.max_bytes),
            uncopied: info.sources.first().map_or(0, |s| s.lag),
            ..Reading::default()
        };
        if state.messages > 0 {
            reading.oldest_unwritten_secs = age_secs(state.first_timestamp.unix_timestamp_nanos());
        }
        if reading.uncopied == 0 {
            self.watched = None;
            return Ok(reading);
        }
        // The newest event copied: the last one in RH_AUDIT, or, when the writer has emptied it, the last written.
        let copied = if state.messages > 0 {
            let last = self.audit.direct_get(state.last_sequence).await.context("RH_AUDIT last message")?;
            rh_bus::source_seq(Some(&last.headers)).unwrap_or(last_written)
        } else {
            last_written
        };
        if copied == 0 {
            return Ok(reading);
        }
        let conv = self.conv.info().await.context("RH_CONV info")?.clone();
        if let Some(watched) = self.watched
            && watched > copied
            && conv.state.first_sequence > watched
        {
            reading.new_gaps = 1;
        }
        match self.conv.direct_get_next_for_subject(subjects::AUDIT_FILTER, Some(copied + 1)).await {
            Ok(next) => {
                self.watched = Some(next.sequence);
                let first = conv.state.first_sequence;
                let last = conv.state.last_sequence;
                // Bytes from the event to the end of RH_CONV, estimated by position: the event is dropped when they
                // exceed max bytes.
                let behind = last.saturating_sub(next.sequence) + 1;
                let span = last.saturating_sub(first) + 1;
                let bytes_from_it = conv.state.bytes as f64 * behind as f64 / span as f64;
                let by_bytes = ratio(bytes_from_it, conv.config.max_bytes);
                let by_age = ratio(age_secs(next.time.unix_timestamp_nanos()), duration_limit(conv.config.max_age));
                reading.risk = by_bytes.max(by_age);
            }
            // Nothing left to copy (the lag was stale), or it was dropped already: the next reading tells.
            Err(e) => {
                tracing::debug!(error = %e, "no uncopied event found in RH_CONV");
                self.watched = None;
            }
        }
        Ok(reading)
    }
}

/// `value / limit`, 0 when there is no limit (`limit <= 0`).
fn ratio(value: f64, limit: i64) -> f64 {
    if limit <= 0 { 0.0 } else { value / limit as f64 }
}

/// A duration limit in seconds as `i64` for [`ratio`] (0 = none).
fn duration_limit(limit: Duration) -> i64 {
    i64::try_from(limit.as_secs()).unwrap_or(i64::MAX)
}

/// Seconds from `at_unix_ns` (a JetStream timestamp) to now; 0 for a time in the future (clock skew).
fn age_secs(at_unix_ns: i128) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    (now.saturating_sub(at_unix_ns) as f64 / 1e9).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_is_no_risk() {
        assert_eq!(ratio(5.0, 0), 0.0);
        assert_eq!(ratio(5.0, -1), 0.0);
        assert_eq!(ratio(5.0, 10), 0.5);
        assert_eq!(duration_limit(Duration::ZERO), 0);
    }
}
