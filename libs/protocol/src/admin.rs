//! Org admin settings over REST, shared by the api and its clients.

use serde::{Deserialize, Serialize};

/// `GET`/`PUT /orgs/{id}/retention`: erase conversations not updated for this many days; `null` (the default)
/// keeps them until their owner deletes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionSettings {
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 36500))]
    pub retention_days: Option<u32>,
}
