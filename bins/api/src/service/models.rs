//! Which models exist: what the worker pool serves (every worker asked over `rh.worker.models`), the default of a new
//! conversation, and the check that a conversation's model is one of them.
//!
//! The pool's answer is kept for [`FRESH`]; after that the next caller asks again. When no worker answers, the
//! last answer still counts (the pool is down or busy, not changed); when no worker ever answered this process,
//! nothing is known: `--default-model` is the default and any model is accepted (its job waits in `RH_JOBS`, and
//! a worker that does not serve it fails the response with the reason, for every viewer).

use crate::domain::ModelName;
use crate::error::ApiError;
use crate::state::AppState;
use futures::StreamExt;
use rh_protocol::rpc::{ModelInfo, ModelList, ModelsQuery, Reply};
use rh_protocol::subjects;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one answer of the pool is used without asking again.
const FRESH: Duration = Duration::from_secs(5);

/// The last list the pool gave, and when.
#[derive(Default)]
pub struct Catalog {
    last: Mutex<Option<(Instant, Vec<ModelInfo>)>>,
}

/// What `GET /models` shows.
pub struct Served {
    /// What the pool serves (its last answer), or `--default-model` alone when no worker ever answered.
    pub models: Vec<ModelInfo>,
    /// The model of a new conversation: `--default-model` if the pool serves it, else the pool's first.
    pub default: String,
    /// A worker answered just now (or within [`FRESH`]).
    pub workers: bool,
    /// The list comes from workers (now or earlier), so a model outside it is refused.
    known: bool,
}

impl Served {
    /// Refuses a model the pool does not serve, naming those it does.
    pub fn check(&self, model: &ModelName) -> Result<(), ApiError> {
        if !self.known || self.models.iter().any(|m| m.id == model.as_str()) {
            return Ok(());
        }
        let ids: Vec<&str> = self.models.iter().map(|m| m.id.as_str()).collect();
        Err(ApiError::UnknownModel(format!(
            "no AI worker serves the model {:?}; available: {}",
            model.as_str(),
            ids.join(", ")
        )))
    }

    /// The default model, parsed.
    pub fn default_model(&self) -> Result<ModelName, ApiError> {
        ModelName::parse(&self.default).map_err(ApiError::Validation)
    }
}

/// What the pool serves now (see the module doc for when no worker answers).
pub async fn served(state: &AppState) -> Served {
    let catalog = &state.models;
    let cached = catalog.last.lock().ok().and_then(|l| l.clone());
    let (models, workers) = match cached {
        Some((at, models)) if at.elapsed() < FRESH => (Some(models), true),
        stale => match ask(state).await {
            Some(models) => {
                if let Ok(mut last) = catalog.last.lock() {
                    *last = Some((Instant::now(), models.clone()));
                }
                (Some(models), true)
            }
            None => (stale.map(|(_, m)| m), false),
        },
    };
    let preferred = &state.settings.default_model;
    match models {
        Some(models) if !models.is_empty() => {
            let default =
                if models.iter().any(|m| &m.id == preferred) { preferred.clone() } else { models[0].id.clone() };
            Served { models, default, workers, known: true }
        }
        _ => Served {
            models: vec![ModelInfo { id: preferred.clone(), provider: "default".into() }],
            default: preferred.clone(),
            workers,
            known: false,
        },
    }
}

/// Asks every worker (each answers `rh.worker.models`; no queue group) and merges what they serve: the first
/// answer may take up to `--models-timeout-ms`, the others are taken for [`GATHER`] after it. A pool whose workers
/// serve different models (a GPU pool and a CPU pool) is seen whole, not one worker's part of it.
async fn ask(state: &AppState) -> Option<Vec<ModelInfo>> {
    let timeout = Duration::from_millis(state.settings.models_timeout_ms);
    match gather(&state.nats, timeout).await {
        Ok(lists) if !lists.is_empty() => Some(merge(lists)),
        Ok(_) => {
            tracing::debug!("no worker listed its models");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not ask the workers for their models");
            None
        }
    }
}

/// How long the other workers' answers are waited for after the first one. Workers answer from memory, so they
/// all answer within milliseconds of each other; a worker slower than this is missed until the next ask.
const GATHER: Duration = Duration::from_millis(100);

/// Every worker's answer: empty when none came within `timeout` (or NATS said nobody listens).
async fn gather(nats: &async_nats::Client, timeout: Duration) -> Result<Vec<ModelList>, Box<dyn std::error::Error>> {
    let inbox = nats.new_inbox();
    let mut replies = nats.subscribe(inbox.clone()).await?;
    let mut headers = async_nats::HeaderMap::new();
    rh_telemetry::trace::inject_nats(&mut headers);
    let payload = serde_json::to_vec(&ModelsQuery {})?;
    nats.publish_with_reply_and_headers(subjects::WORKER_MODELS, inbox, headers, payload.into()).await?;
    let mut until = tokio::time::Instant::now() + timeout;
    let mut lists = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout_at(until, replies.next()).await {
        if msg.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            break;
        }
        match serde_json::from_slice::<Reply<ModelList>>(&msg.payload) {
            Ok(Reply::Ok(list)) => lists.push(list),
            Ok(Reply::Error(e)) => tracing::debug!(error = ?e, "a worker refused to list its models"),
            Err(e) => tracing::debug!(error = %e, "unreadable model list"),
        }
        until = until.min(tokio::time::Instant::now() + GATHER);
    }
    Ok(lists)
}

/// The union of the workers' lists, each model once, in an order that does not depend on who answered first.
fn merge(mut lists: Vec<ModelList>) -> Vec<ModelInfo> {
    lists.sort_by(|a, b| a.models.iter().map(|m| &m.id).cmp(b.models.iter().map(|m| &m.id)));
    let mut models: Vec<ModelInfo> = Vec::new();
    for m in lists.into_iter().flat_map(|l| l.models) {
        if !models.iter().any(|seen| seen.id == m.id) {
            models.push(m);
        }
    }
    models
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[&str]) -> ModelList {
        ModelList {
            models: ids.iter().map(|id| ModelInfo { id: (*id).into(), provider: "simulated".into() }).collect(),
        }
    }

    #[test]
    fn lists_merge_into_one_union_whoever_answered_first() {
        let ids = |m: Vec<ModelInfo>| m.into_iter().map(|m| m.id).collect::<Vec<_>>();
        let a = merge(vec![list(&["gpu-large", "sim-1"]), list(&["sim-1", "sim-2"]), list(&["sim-1", "sim-2"])]);
        let b = merge(vec![list(&["sim-1", "sim-2"]), list(&["gpu-large", "sim-1"])]);
        assert_eq!(ids(a), ["gpu-large", "sim-1", "sim-2"]);
        assert_eq!(ids(b), ["gpu-large", "sim-1", "sim-2"]);
    }
}
