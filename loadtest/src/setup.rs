//! Everything the scenario needs, created through the public v1 API exactly as a customer would: its own org
//! (`POST /orgs`), members (`POST /orgs/{id}/members`, then `POST /auth/login`), conversations, and shares. The
//! calls are [`rh_client`]'s, the client the tests use too.

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use rh_client::{Client, Session};
use uuid::Uuid;

/// Concurrent setup requests (creating 1,000 conversations one by one would take longer than the test).
const SETUP_CONCURRENCY: usize = 16;

/// What setup created.
#[derive(Clone, Debug)]
pub struct World {
    pub owner: Session,
    /// Responder accounts (`respond` on every conversation); responder r of every conversation is account r.
    pub responders: Vec<Session>,
    /// Viewer accounts (`view` on every conversation), shared by many sockets.
    pub viewers: Vec<Session>,
    pub conversations: Vec<Uuid>,
    /// A conversation without traffic for the idle sockets.
    pub idle_conversation: Uuid,
}

/// Creates the org, accounts, conversations and shares of a scenario.
pub async fn create_world(
    api: &Client,
    conversations: usize,
    responders: usize,
    viewer_users: usize,
) -> anyhow::Result<World> {
    let tag = Uuid::new_v4().simple().to_string();
    let tag = &tag[..12];
    let password = format!("loadtest-{tag}");
    let owner = api
        .sign_up(&format!("Loadtest {tag}"), "Load Owner", &format!("owner-{tag}@loadtest.test"), &password)
        .await
        .context("signing up the load-test org")?;

    let member = |kind: &'static str, i: usize| {
        let (api, owner, password) = (api.clone(), owner.clone(), password.clone());
        async move {
            api.add_member(&owner, &format!("Load {kind} {i}"), &format!("{kind}-{i}-{tag}@loadtest.test"), &password)
                .await
                .with_context(|| format!("adding {kind} {i}"))
        }
    };
    let responders: Vec<Session> = futures::stream::iter((0..responders).map(|i| member("responder", i)))
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    let viewers: Vec<Session> = futures::stream::iter((0..viewer_users).map(|i| member("viewer", i)))
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;

    let mut shares: Vec<(Uuid, &str)> = responders.iter().map(|s| (s.user_id, "respond")).collect();
    shares.extend(viewers.iter().map(|s| (s.user_id, "view")));
    let make = |title: String| {
        let (api, owner, shares) = (api.clone(), owner.clone(), shares.clone());
        async move {
            let id = api.create_conversation(&owner, &title).await?;
            api.share(&owner, id, &shares).await?;
            anyhow::Ok(id)
        }
    };
    let ids: Vec<Uuid> = futures::stream::iter(
        (0..=conversations)
            .map(|i| make(if i == conversations { "Load test: idle".to_owned() } else { format!("Load test {i}") })),
    )
    .buffered(SETUP_CONCURRENCY)
    .try_collect()
    .await
    .context("creating and sharing the conversations")?;
    let Some((&idle_conversation, conversations)) = ids.split_last() else { bail!("no conversations created") };
    Ok(World { owner, responders, viewers, conversations: conversations.to_vec(), idle_conversation })
}
