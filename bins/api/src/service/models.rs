//! Which models exist: what the worker pool serves (asked over `rh.worker.models`), the default of a new
//! conversation, and the check that a conversation's model is one of them.
//!
//! The pool's answer is kept for [`FRESH`]; after that the next caller asks again. When no worker answers, the
//! last answer still counts (the pool is down or busy, not changed); when no worker ever answered this process,
//! nothing is known: `--default-model` is the default and any model is accepted (its job waits in `RH_JOBS`, and
//! a worker that does not serve it fails the response with the reason, for every viewer).

use crate::domain::ModelName;
use crate::error::ApiError;
use crate::state::AppState;
use rh_protocol::rpc::{ModelInfo, ModelList, ModelsQuery};
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

async fn ask(state: &AppState) -> Option<Vec<ModelInfo>> {
    let timeout = Duration::from_millis(state.settings.models_timeout_ms);
    match rh_bus::request::<_, ModelList>(&state.nats, subjects::WORKER_MODELS, &ModelsQuery {}, timeout).await {
        Ok(list) => Some(list.models),
        Err(e) => {
            tracing::debug!(error = %e, "no worker listed its models");
            None
        }
    }
}
