//! The provider's token stream as `select!` branches (pending forever once done, so the branch is disabled), and
//! the deltas it becomes.

use super::JobContext;
use crate::publisher::Publisher;
use futures::StreamExt;
use futures::future::BoxFuture;
use rh_llm::{LlmError, TokenStream};
use rh_protocol::rpc::GenerateJob;
use rh_protocol::{Envelope, Event};

/// The provider's answer to the start of a generation; pending forever once taken (the branch is then disabled).
pub(super) async fn started_stream(
    start: &mut Option<BoxFuture<'static, Result<TokenStream, LlmError>>>,
) -> Result<TokenStream, LlmError> {
    match start {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

pub(super) async fn next_token(tokens: &mut Option<TokenStream>) -> Option<Result<String, LlmError>> {
    match tokens {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub(super) fn describe(e: &LlmError) -> String {
    e.to_string()
}

/// Publishes the pending text as the next delta.
pub(super) async fn flush(
    ctx: &JobContext,
    publisher: &mut Publisher,
    job: &GenerateJob,
    attempt: u32,
    index: &mut u32,
    pending: &mut String,
) -> Result<(), crate::publisher::PublishFailure> {
    if pending.is_empty() {
        return Ok(());
    }
    let delta = Envelope::new(
        job.conversation_id,
        None,
        Event::ResponseDelta {
            response_id: job.response_id,
            attempt,
            index: *index,
            text: std::mem::take(pending),
            from_index: None,
        },
    );
    publisher.publish(delta).await?;
    *index += 1;
    ctx.metrics.deltas_published.inc();
    Ok(())
}
