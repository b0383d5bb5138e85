//! Validated domain values. Request bodies are parsed into these at the edge of each route ("parse, don't
//! validate"): a handler that holds an [`Email`] knows it is trimmed, lower-cased and well-formed, and nothing
//! downstream checks again. Each `parse` returns a message fit to show the caller (400).

mod email;
mod names;
mod paging;
mod password;
mod settings;

pub use email::Email;
pub use names::{MessageText, OrgName, PersonName, TeamName, Title};
pub use paging::{HistoryPage, PageCursor, PageLimit};
pub use password::Password;
pub use settings::{ModelName, SharePermission, SystemPrompt, Temperature};

/// True when `s` has a control character (newlines included), which names and titles never need.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}
