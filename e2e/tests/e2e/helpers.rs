//! Shared pieces: a stack with a team, and a viewer that records what it saw.

use rh_protocol::{Envelope, Event, ServerFrame};
use rh_testkit::{Api, Session, Stack, StackOptions, WsClient};
use std::time::Duration;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(20);

/// A stack plus an org with an owner and two teammates.
pub struct Team {
    pub stack: Stack,
    pub api: Api,
    pub owner: Session,
    pub ben: Session,
    pub cy: Session,
}

pub async fn team(options: StackOptions) -> anyhow::Result<Team> {
    let stack = Stack::start(options).await?;
    let api = stack.api();
    let tag = Uuid::new_v4().simple().to_string();
    let owner = api.sign_up("Acme", "Ada Admin", &format!("ada-{tag}@acme.test"), "pw-ada-123456").await?;
    let ben = api.add_member(&owner, "Ben Builder", &format!("ben-{tag}@acme.test"), "pw-ben-123456").await?;
    let cy = api.add_member(&owner, "Cy Curious", &format!("cy-{tag}@acme.test"), "pw-cy-1234567").await?;
    Ok(Team { stack, api, owner, ben, cy })
}

/// One event as a viewer received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub seq: u64,
    pub event: Envelope,
}

/// A socket subscribed to one conversation that records every `event` frame.
pub struct Viewer {
    pub ws: WsClient,
    pub conversation: Uuid,
    pub seen: Vec<Seen>,
    pub subscribed_at: u64,
}

impl Viewer {
    /// Connects, subscribes with `after_seq`, and waits for `subscribed`.
    pub async fn join(ws_url: &str, who: &Session, conversation: Uuid, after_seq: Option<u64>) -> anyhow::Result<Self> {
        Self::join_with(ws_url, who, conversation, after_seq, false).await
    }

    /// [`Viewer::join`], with a compact catch-up (runs of missed deltas merged) if `compact`.
    pub async fn join_with(
        ws_url: &str,
        who: &Session,
        conversation: Uuid,
        after_seq: Option<u64>,
        compact: bool,
    ) -> anyhow::Result<Self> {
        let mut ws = WsClient::connect(ws_url, &who.token).await?;
        if compact {
            ws.subscribe_compact(conversation, after_seq).await?;
        } else {
            ws.subscribe(conversation, after_seq).await?;
        }
        let (f, _) =
            ws.until(WAIT, |f| matches!(f, ServerFrame::Subscribed { .. } | ServerFrame::Error { .. })).await?;
        let ServerFrame::Subscribed { seq, .. } = f else { anyhow::bail!("subscribe refused: {f:?}") };
        Ok(Viewer { ws, conversation, seen: Vec::new(), subscribed_at: seq })
    }

    /// Reads frames until `pred` holds for one, recording every event of this conversation on the way (an event
    /// can arrive before the reply to the frame that caused it: a fast response may start before
    /// `message.accepted` reaches the socket).
    pub async fn until_frame(&mut self, mut pred: impl FnMut(&ServerFrame) -> bool) -> anyhow::Result<ServerFrame> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self.ws.next_frame(left).await?;
            if let ServerFrame::Event { conversation_id, seq, event } = &f
                && *conversation_id == self.conversation
            {
                self.seen.push(Seen { seq: *seq, event: event.clone() });
            }
            if pred(&f) {
                return Ok(f);
            }
        }
    }

    /// Reads frames until `pred` holds for a received event of this conversation.
    pub async fn until_event(&mut self, pred: impl Fn(&Seen) -> bool) -> anyhow::Result<Seen> {
        let conversation = self.conversation;
        let f = self
            .until_frame(|f| match f {
                ServerFrame::Event { conversation_id, seq, event } if *conversation_id == conversation => {
                    pred(&Seen { seq: *seq, event: event.clone() })
                }
                _ => false,
            })
            .await?;
        let ServerFrame::Event { seq, event, .. } = f else { unreachable!("until_frame returns a matching event") };
        Ok(Seen { seq, event })
    }

    /// Reads until the end event (completed / failed / stopped) of `response_id`.
    pub async fn until_response_end(&mut self, response_id: Uuid) -> anyhow::Result<Seen> {
        self.until_event(|s| s.event.event.is_response_end() && s.event.event.response_id() == Some(response_id)).await
    }

    /// Reads until `n` deltas of `response_id` have arrived.
    pub async fn until_deltas(&mut self, response_id: Uuid, n: usize) -> anyhow::Result<()> {
        loop {
            let have = self
                .seen
                .iter()
                .filter(|s| s.event.event.is_delta() && s.event.event.response_id() == Some(response_id))
                .count();
            if have >= n {
                return Ok(());
            }
            self.until_event(|_| true).await?;
        }
    }
}

/// Checks what one viewer saw of one response: positions strictly increasing (no duplicate), the response began
/// with `response.started`, the deltas of the final attempt have indexes 0..n with no gap, and their text equals
/// the completed text. Returns the completed text.
pub fn check_response(seen: &[Seen], response_id: Uuid) -> anyhow::Result<String> {
    for w in seen.windows(2) {
        anyhow::ensure!(w[0].seq < w[1].seq, "positions not increasing: {} then {}", w[0].seq, w[1].seq);
    }
    let of: Vec<&Seen> = seen.iter().filter(|s| s.event.event.response_id() == Some(response_id)).collect();
    let last_attempt = of
        .iter()
        .filter_map(|s| match &s.event.event {
            Event::ResponseStarted { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .max()
        .ok_or_else(|| anyhow::anyhow!("no response.started seen"))?;
    let mut text = String::new();
    let mut next_index = 0u32;
    let mut completed = None;
    for s in &of {
        match &s.event.event {
            Event::ResponseDelta { attempt, index, text: t, from_index, .. } if *attempt == last_attempt => {
                // A merged delta of a compact catch-up covers `from_index..=index`.
                let first = from_index.unwrap_or(*index);
                anyhow::ensure!(
                    first == next_index && first <= *index,
                    "delta {first}..={index}, expected {next_index} (gap or duplicate)"
                );
                next_index = index + 1;
                text.push_str(t);
            }
            Event::ResponseCompleted { attempt, text: t, .. } => {
                anyhow::ensure!(
                    *attempt == last_attempt,
                    "completed by attempt {attempt}, last started {last_attempt}"
                );
                completed = Some(t.clone());
            }
            _ => {}
        }
    }
    let completed = completed.ok_or_else(|| anyhow::anyhow!("no response.completed seen"))?;
    anyhow::ensure!(text == completed, "deltas {text:?} != completed {completed:?}");
    anyhow::ensure!(!completed.is_empty(), "empty response");
    Ok(completed)
}

/// Waits until the transcript in PostgreSQL (`GET /conversations/{id}`) shows the response finished; returns its text.
pub async fn stored_response(
    api: &Api,
    who: &Session,
    conversation: Uuid,
    response_id: Uuid,
) -> anyhow::Result<String> {
    rh_testkit::eventually(WAIT, "the response in the stored history", || async {
        let v = api.conversation(who, conversation).await.ok()?;
        let msgs = v["messages"].as_array()?;
        let m = msgs.iter().find(|m| m["id"] == response_id.to_string())?;
        (m["status"] == "complete").then(|| m["text"].as_str().unwrap_or_default().to_owned())
    })
    .await
}

/// The response id in a `POST .../messages` reply.
pub fn response_id(reply: &serde_json::Value) -> anyhow::Result<Uuid> {
    Ok(Uuid::parse_str(reply["response_id"].as_str().unwrap_or_default())?)
}

/// The `seq` the conversation's history covers, as a client reads it before subscribing.
pub async fn history_seq(api: &Api, who: &Session, conversation: Uuid) -> anyhow::Result<u64> {
    let v = api.conversation(who, conversation).await?;
    v["seq"].as_u64().ok_or_else(|| anyhow::anyhow!("no seq in {v}"))
}

/// The api's environment for a test whose burst of sends goes past the default reply and concurrent-answer
/// limits, which that test is not about: every one of them off.
pub fn api_env_without_reply_limits() -> Vec<(String, String)> {
    [
        "RH_LIMIT_USER_REPLIES_BURST",
        "RH_LIMIT_ORG_REPLIES_BURST",
        "RH_LIMIT_CONVERSATION_RESPONSES",
        "RH_LIMIT_ORG_RESPONSES",
    ]
    .map(|k| (k.to_owned(), "0".to_owned()))
    .into()
}

pub fn sim_env(pairs: &[(&str, &str)]) -> StackOptions {
    StackOptions {
        worker_env: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..StackOptions::default()
    }
}

/// Asks `n` questions in `conversation` as the owner, each `sim` (a `/sim …` line) then "question i"; returns
/// each response's id → its message's id.
pub async fn ask_questions(
    t: &Team,
    conversation: Uuid,
    n: usize,
    sim: &str,
) -> anyhow::Result<std::collections::HashMap<Uuid, Uuid>> {
    let mut asked = std::collections::HashMap::new();
    for i in 0..n {
        let reply = t.api.send_message(&t.owner, conversation, &format!("{sim}\nquestion {i}")).await?;
        let message_id = Uuid::parse_str(reply["message_id"].as_str().unwrap_or_default())?;
        asked.insert(response_id(&reply)?, message_id);
    }
    Ok(asked)
}

/// Waits until each response has ended on the viewer's socket (it may have ended while the viewer waited for
/// another); returns each one's text, checked complete and gapless.
pub async fn ended_texts(v: &mut Viewer, rids: &[Uuid]) -> anyhow::Result<std::collections::HashMap<Uuid, String>> {
    let mut texts = std::collections::HashMap::new();
    for rid in rids {
        let ended = |s: &Seen| s.event.event.is_response_end() && s.event.event.response_id() == Some(*rid);
        if !v.seen.iter().any(ended) {
            v.until_response_end(*rid).await?;
        }
        texts.insert(*rid, check_response(&v.seen, *rid)?);
    }
    Ok(texts)
}

/// Every asked message and its response is stored exactly once, and the conversation holds nothing else.
pub async fn assert_stored_exactly_once(
    t: &Team,
    conversation: Uuid,
    asked: &std::collections::HashMap<Uuid, Uuid>,
) -> anyhow::Result<()> {
    assert_stored_exactly_once_in(&t.stack.db, conversation, asked).await
}

/// [`assert_stored_exactly_once`] in the database `db`.
pub async fn assert_stored_exactly_once_in(
    db: &rh_testkit::TestDb,
    conversation: Uuid,
    asked: &std::collections::HashMap<Uuid, Uuid>,
) -> anyhow::Result<()> {
    let db = db.connect().await?;
    let ids: Vec<Uuid> = asked.iter().flat_map(|(r, m)| [*r, *m]).collect();
    let count = |sql: &'static str| {
        let (db, ids) = (&db, ids.clone());
        async move { db.query_one(sql, &[&ids, &conversation]).await.map(|r| r.get::<_, i64>(0)) }
    };
    let stored = count("SELECT count(*) FROM messages WHERE id = ANY($1) AND conversation_id = $2").await?;
    let all = count("SELECT count(*) FROM messages WHERE conversation_id = $2 OR id = ANY($1)").await?;
    anyhow::ensure!(
        (stored, all) == (ids.len() as i64, ids.len() as i64),
        "each exactly once, nothing else: {stored} of {} stored, {all} in all",
        ids.len()
    );
    Ok(())
}
