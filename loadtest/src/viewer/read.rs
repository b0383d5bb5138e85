//! Reading a subscribed socket to its end: the plan's arrival, the drain deadline, churn, resubscribes after
//! `lagged`, reconnects after unexpected closes.

use super::socket::{Conn, Inbound, next_inbound};
use super::{Next, Plan, Viewer};
use crate::metrics::Metrics;
use futures::SinkExt;
use rh_protocol::ClientFrame;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Reconnects after unexpected closes before a viewer gives up.
const MAX_RECONNECTS: u32 = 5;
/// In a chaos run a viewer may lose its socket at every kill.
const CHAOS_MAX_RECONNECTS: u32 = 1000;

impl Viewer {
    pub(super) async fn idle(&mut self, mut conn: Conn) {
        loop {
            tokio::select! {
                _ = self.ctx.cancel.cancelled() => break,
                inbound = next_inbound(&mut conn) => match inbound {
                    Inbound::Closed(why) => {
                        self.ctx.metrics.error("idle_socket_closed");
                        tracing::debug!(viewer = self.spec.name, why, "idle socket closed");
                        return;
                    }
                    _ => continue,
                },
            }
        }
        conn.close().await;
    }

    pub(super) async fn read_loop(
        &mut self,
        mut conn: Conn,
        plan_rx: &mut watch::Receiver<Option<Arc<Plan>>>,
    ) -> Option<Conn> {
        let cancel = self.ctx.cancel.clone();
        loop {
            let churn_at = self.churn_at;
            let deadline = self.plan.as_ref().map(|p| p.deadline);
            let waiting_plan = self.plan.is_none();
            let next = tokio::select! {
                _ = cancel.cancelled() => Next::Stop,
                changed = plan_rx.changed(), if waiting_plan => {
                    if changed.is_err() {
                        Next::Stop
                    } else {
                        self.plan = plan_rx.borrow().clone();
                        if self.on_plan() { Next::Done } else { Next::Continue }
                    }
                }
                _ = sleep_opt(deadline) => Next::Stop,
                _ = sleep_opt(churn_at) => {
                    self.churn_at = None;
                    Next::Reconnect(String::new())
                }
                inbound = next_inbound(&mut conn) => match inbound {
                    Inbound::Frame(text) => {
                        self.metrics().bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                        self.on_frame(text.as_str())
                    }
                    Inbound::Envelope(payload) => {
                        self.metrics().bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                        self.on_envelope(None, &payload)
                    }
                    Inbound::Nothing => Next::Continue,
                    Inbound::Closed(why) => Next::Reconnect(why),
                },
            };
            match next {
                Next::Continue => {}
                Next::Done | Next::Stop => return Some(conn),
                Next::Resubscribe => {
                    // The edge dropped the live stream (lagged): ask again from the last position.
                    if let Conn::Edge(ws) = &mut conn {
                        let frame = ClientFrame::Subscribe {
                            conversation_id: self.spec.conversation,
                            after_seq: Some(self.checker.last_seq()),
                            compact: self.ctx.compact,
                            grant: None,
                        };
                        let text = serde_json::to_string(&frame).unwrap_or_default();
                        if ws.send(Message::Text(text.into())).await.is_err() {
                            self.metrics().error("resubscribe_failed");
                        }
                    }
                }
                Next::Reconnect(why) => {
                    let planned = why.is_empty();
                    if !planned {
                        self.reconnects += 1;
                        if self.ctx.chaos {
                            Metrics::inc(&self.metrics().disruptions);
                        } else {
                            self.metrics().error("socket_closed");
                        }
                        tracing::debug!(viewer = self.spec.name, why, "socket closed unexpectedly");
                    }
                    let can_resume = !self.ctx.transport.is_baseline();
                    let max_reconnects = if self.ctx.chaos { CHAOS_MAX_RECONNECTS } else { MAX_RECONNECTS };
                    if !can_resume || self.reconnects > max_reconnects {
                        return Some(conn);
                    }
                    conn.close().await;
                    if planned {
                        tokio::time::sleep(self.ctx.churn_pause).await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Metrics::inc(&self.ctx.metrics.reconnects);
                    let last = self.checker.last_seq();
                    match self.connect(Some(last)).await {
                        Some(c) => {
                            conn = c;
                            let early = std::mem::take(&mut self.early);
                            for f in early {
                                if let Next::Done = self.on_frame(&f) {
                                    return Some(conn);
                                }
                            }
                        }
                        None => match self.reconnect_again(last).await {
                            Some(c) => conn = c,
                            None => return None,
                        },
                    }
                }
            }
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
