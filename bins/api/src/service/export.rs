//! Export: a conversation's finished history as JSON ([`ConversationExport`]) or Markdown, for anyone who can see
//! it (View Only included). Only what `GET /conversations/{id}` shows: finished messages, never a partial answer.

use crate::error::ApiError;
use crate::state::AppState;
use rh_protocol::tools::{ConversationExport, ExportedMessage};
use rh_store::history::Page;
use std::fmt::Write as _;
use uuid::Uuid;

/// The formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
}

impl Format {
    /// `json`, or `markdown` (also `md`).
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "json" => Ok(Format::Json),
            "markdown" | "md" => Ok(Format::Markdown),
            other => Err(ApiError::Validation(format!("format must be \"json\" or \"markdown\", not {other:?}"))),
        }
    }
}

/// The conversation as `user_id` may see it, whole (404 when they may not).
pub async fn export(state: &AppState, user_id: Uuid, conversation_id: Uuid) -> Result<ConversationExport, ApiError> {
    let view = super::views::view(state, user_id, conversation_id, Page::ALL).await?;
    let c = view.conversation;
    // Every version is exported; the older ones are marked.
    let current = rh_store::history::current_ids(&view.history.messages);
    Ok(ConversationExport {
        id: c.id,
        title: c.title,
        owner_name: c.owner_name,
        model: c.model,
        system_prompt: c.system_prompt,
        created_at: c.created_at.to_rfc3339(),
        exported_at: chrono::Utc::now().to_rfc3339(),
        messages: view
            .history
            .messages
            .into_iter()
            .map(|m| ExportedMessage {
                earlier_attempt: !current.contains(&m.id),
                id: m.id,
                role: m.role,
                author_name: m.author_name,
                model: m.model,
                status: m.status,
                text: m.text,
                created_at: m.created_at.to_rfc3339(),
                reply_to: m.reply_to,
                edit_of: m.edit_of,
            })
            .collect(),
    })
}

/// The export as a Markdown document: a title, who and what, then each message under its author.
pub fn markdown(e: &ConversationExport) -> String {
    let mut out = String::new();
    let title = if e.title.trim().is_empty() { "Untitled conversation" } else { e.title.as_str() };
    let _ = writeln!(out, "# {}\n", one_line(title));
    let _ = writeln!(out, "- Owner: {}", one_line(&e.owner_name));
    let _ = writeln!(out, "- Model: {}", one_line(&e.model));
    let _ = writeln!(out, "- Created: {}", e.created_at);
    let _ = writeln!(out, "- Exported: {}", e.exported_at);
    if let Some(prompt) = e.system_prompt.as_deref().filter(|p| !p.trim().is_empty()) {
        let _ = writeln!(out, "\n> **System prompt**");
        for line in prompt.lines() {
            let _ = writeln!(out, "> {line}");
        }
    }
    for m in &e.messages {
        let who = match m.role.as_str() {
            "user" => m.author_name.clone().unwrap_or_else(|| "Someone".into()),
            _ => format!("AI ({})", m.model.as_deref().unwrap_or("unknown model")),
        };
        let status = match m.status.as_str() {
            "stopped" => " — stopped",
            "failed" => " — failed",
            _ => "",
        };
        let earlier = if m.earlier_attempt { " — earlier attempt" } else { "" };
        let _ = writeln!(
            out,
            "\n---\n\n**{}** · {}{status}{earlier}\n\n{}",
            one_line(&who),
            m.created_at,
            m.text.trim_end()
        );
    }
    out
}

/// A name or title on one line (a newline in it would end the Markdown heading or item).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_has_each_message_under_its_author() {
        let e = ConversationExport {
            id: Uuid::nil(),
            title: "Plan\nB".into(),
            owner_name: "Ada".into(),
            model: "sim-1".into(),
            system_prompt: Some("Be brief.".into()),
            created_at: "2026-01-01T00:00:00+00:00".into(),
            exported_at: "2026-01-02T00:00:00+00:00".into(),
            messages: vec![
                ExportedMessage {
                    id: Uuid::nil(),
                    role: "user".into(),
                    author_name: Some("Ben".into()),
                    model: None,
                    status: "complete".into(),
                    text: "| a | b |\n|---|---|\n| 1 | 2 |".into(),
                    created_at: "2026-01-01T00:00:01+00:00".into(),
                    reply_to: None,
                    edit_of: None,
                    earlier_attempt: false,
                },
                ExportedMessage {
                    id: Uuid::nil(),
                    role: "assistant".into(),
                    author_name: None,
                    model: Some("sim-1".into()),
                    status: "stopped".into(),
                    text: "Half an ans".into(),
                    created_at: "2026-01-01T00:00:02+00:00".into(),
                    reply_to: None,
                    edit_of: None,
                    earlier_attempt: true,
                },
            ],
        };
        let md = markdown(&e);
        assert!(md.starts_with("# Plan B\n"), "{md}");
        assert!(md.contains("> Be brief."));
        assert!(md.contains("**Ben** · 2026-01-01T00:00:01+00:00\n\n| a | b |\n|---|---|\n| 1 | 2 |"), "{md}");
        assert!(
            md.contains("**AI (sim-1)** · 2026-01-01T00:00:02+00:00 — stopped — earlier attempt\n\nHalf an ans"),
            "{md}"
        );
    }
}
