//! `api seed-demo`: the demo orgs, people and one shared conversation. Idempotent: what exists is left alone,
//! so it can run at every deployment.
//!
//! - org "Acme": ada@acme.test (admin, Ada Lovelace), ben@acme.test (Ben Okafor), cy@acme.test (Cy Tanaka),
//!   dee@acme.test (Dee Ramos);
//! - org "Globex": gil@globex.test (admin, Gil Bates);
//! - conversation "Welcome to RelayHub" owned by Ada, shared with Ben (Can Respond) and Cy (View Only), holding a
//!   finished exchange (Ada's question, an answer with a table and code) so the first look is not an empty page.
//!
//! Every password is `relayhub-demo`.

use crate::config::Settings;
use crate::domain::{SharePermission, Title};
use crate::routes::auth::hash_password;
use crate::service;
use crate::service::events::Change;
use crate::state::AppState;
use anyhow::Context as _;
use rh_auth::Secret;
use rh_protocol::Event;
use rh_store::conversations::Conversation;
use rh_store::orgs::{NewUser, Org, User};
use rh_telemetry::Health;
use uuid::Uuid;

pub const DEMO_PASSWORD: &str = "relayhub-demo";
const DEMO_TITLE: &str = "Welcome to RelayHub";

/// Runs the seeding against the configured database and NATS.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // Tokens are never issued here; any key will do.
    let secret = settings.jwt_secret.clone().unwrap_or_else(|| Secret::new(Uuid::new_v4().to_string()));
    let health = Health::new("api_seed");
    let connect = crate::startup::build_state(settings, &health, &secret);
    let state = tokio::time::timeout(std::time::Duration::from_secs(30), connect)
        .await
        .context("NATS or PostgreSQL did not answer within 30 s")??;
    seed(&state).await?;
    state.nats.flush().await.context("flushing NATS")?;
    println!(
        "demo data ready: ada@acme.test, ben@acme.test, cy@acme.test, dee@acme.test, gil@globex.test (password {DEMO_PASSWORD})"
    );
    Ok(())
}

/// Creates whatever part of the demo data is missing.
pub async fn seed(state: &AppState) -> anyhow::Result<()> {
    let hash = hash_password(state, DEMO_PASSWORD.to_owned()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let ada = ensure_user(state, "Acme", "Ada Lovelace", "ada@acme.test", "admin", &hash).await?;
    let ben = ensure_user(state, "Acme", "Ben Okafor", "ben@acme.test", "member", &hash).await?;
    let cy = ensure_user(state, "Acme", "Cy Tanaka", "cy@acme.test", "member", &hash).await?;
    ensure_user(state, "Acme", "Dee Ramos", "dee@acme.test", "member", &hash).await?;
    ensure_user(state, "Globex", "Gil Bates", "gil@globex.test", "admin", &hash).await?;

    let owned = rh_store::conversations::list_for_user(&state.db, ada.id, None, 500).await?;
    if owned.iter().any(|e| e.conversation.owner_id == ada.id && e.conversation.title == DEMO_TITLE) {
        tracing::info!("demo conversation exists");
        return Ok(());
    }
    let title = Title::parse(Some(DEMO_TITLE)).map_err(anyhow::Error::msg)?;
    // The pool's default model (or `--default-model` while no worker has answered).
    let conversation = service::conversations::create(state, ada.id, ada.org_id, &title, None)
        .await
        .map_err(|e| anyhow::anyhow!("creating the demo conversation: {e}"))?;
    let respond = SharePermission::parse("respond").map_err(anyhow::Error::msg)?;
    let view = SharePermission::parse("view").map_err(anyhow::Error::msg)?;
    let targets = [(ben.id, respond), (cy.id, view)].map(|(user_id, permission)| service::shares::ShareTarget {
        user_id,
        permission,
        expires_at: None,
    });
    let access = service::access::check(state, conversation.id, ada.id, service::access::Need::Own("share it")).await?;
    service::shares::share_many(state, &access, &targets)
        .await
        .map_err(|e| anyhow::anyhow!("sharing the demo conversation: {e}"))?;
    seed_exchange(state, &conversation, &ada).await?;
    tracing::info!(conversation_id = %conversation.id, "demo conversation created");
    Ok(())
}

const DEMO_QUESTION: &str = "What can RelayHub do for our team?";
const DEMO_ANSWER: &str = "RelayHub is a shared AI chat: everyone you share a conversation with watches the answer \
stream in live, token by token.

| You want to | Do this |
|---|---|
| Work on something together | **Share** it: *View only* to watch, *Can respond* to take part |
| Catch up later | Open it: the history and any answer still streaming are there |
| Change how the AI answers | **Settings**: model, temperature, system prompt |

Answers keep their formatting, code included:

```python
def greet(team):
    return f\"Welcome, {team}!\"
```

Try it: ask a question below. With the simulated AI, a first line like `/sim tokens=300 rate=40` sets how long \
the answer is and how fast it streams.";

/// The demo's finished first exchange, as the events a real one leaves (`message.created`, then the answer's
/// `response.completed`), committed through the outbox after the conversation's own creation: the audit writer
/// records it like any other, and no AI is asked.
async fn seed_exchange(state: &AppState, conversation: &Conversation, ada: &User) -> anyhow::Result<()> {
    const WHAT: &str = "seeding the demo exchange";
    let mut client = state.db.client().await.context(WHAT)?;
    let (mut change, _) = Change::begin(&mut client, conversation.id, ada.id).await.context(WHAT)?;
    let response_id = Uuid::now_v7();
    change
        .event(Event::MessageCreated {
            message_id: Uuid::now_v7(),
            author_id: ada.id,
            author_name: ada.name.clone(),
            text: DEMO_QUESTION.to_owned(),
            client_msg_id: None,
            response_id,
            copied_from: None,
            edit_of: None,
        })
        .context(WHAT)?;
    change
        .event(Event::ResponseCompleted {
            response_id,
            attempt: 1,
            model: conversation.model.clone(),
            text: DEMO_ANSWER.to_owned(),
        })
        .context(WHAT)?;
    change.commit(state).await.context(WHAT)
}

/// The user with this email, created (with its org, as that org's first user) when missing.
async fn ensure_user(
    state: &AppState,
    org_name: &str,
    name: &str,
    email: &str,
    role: &str,
    hash: &str,
) -> anyhow::Result<User> {
    if let Some((user, _)) = rh_store::orgs::user_for_login(&state.db, email).await? {
        return Ok(user);
    }
    let new = |org_id| NewUser { id: Uuid::now_v7(), org_id, name, email, password_hash: hash, role };
    let user = match rh_store::orgs::org_by_name(&state.db, org_name).await? {
        Some(org) => rh_store::orgs::insert_user(&state.db, &new(org.id)).await?,
        None => {
            let org = Org { id: Uuid::now_v7(), name: org_name.to_owned() };
            rh_store::orgs::create_org_with_admin(&state.db, &org, &new(org.id)).await?
        }
    };
    tracing::info!(email, "demo user created");
    Ok(user)
}
