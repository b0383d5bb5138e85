//! The ingress thread: the NATS connection and the feeds' live subscriptions run on a runtime of their own, apart
//! from the sockets' tasks.
//!
//! Under load the main runtime's queues hold thousands of socket writers, each a syscall. A NATS reader or a feed
//! woken behind them waited for all of them: in load test (b) an event spent ~200 ms between the broker storing it
//! and its feed receiving it, most of its delivery latency, before any merging could help (`RESULTS.md`, session
//! 10). On their own thread the OS gives them their share at once; the wait moves to the sockets' queues, where
//! queued deltas merge into fewer frames.

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// A current-thread runtime on a thread of its own; stopped (its tasks dropped) when this is dropped.
pub struct Ingress {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl Ingress {
    pub fn start() -> std::io::Result<Ingress> {
        let rt = Builder::new_current_thread().enable_all().build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("edge-ingress".into()).spawn(move || {
            rt.block_on(async {
                let _ = stopped.await;
            });
        })?;
        Ok(Ingress { handle, _stop: stop })
    }

    /// Where the NATS connection and the feeds' tasks are spawned.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}
