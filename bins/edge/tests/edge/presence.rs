//! Presence across two edge nodes.

use crate::helpers::*;
use rh_protocol::{Permission, ServerFrame};
use uuid::Uuid;

fn viewers_are(conv: Uuid, want: &[Uuid]) -> impl FnMut(&ServerFrame) -> bool + '_ {
    move |f| match f {
        ServerFrame::Presence { conversation_id, viewers } if *conversation_id == conv => {
            let mut got: Vec<Uuid> = viewers.iter().map(|v| v.user_id).collect();
            got.sort();
            let mut want = want.to_vec();
            want.sort();
            got == want
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_shows_unique_viewers_across_edges() -> anyhow::Result<()> {
    let env = Env::start(2).await?;
    let ada = env.user("Ada")?;
    let ben = env.user("Ben")?;
    let conv = env.conversation(&ada).await?;
    env.grant(conv, &ben, Permission::View);

    let mut a = env.connect(0, &ada).await?;
    subscribe(&mut a, conv, None).await?;
    a.until(WAIT, viewers_are(conv, &[ada.id])).await?;

    // Ben watches through the other edge: both see both.
    let mut b = env.connect(1, &ben).await?;
    subscribe(&mut b, conv, None).await?;
    b.until(WAIT, viewers_are(conv, &[ada.id, ben.id])).await?;
    let (f, _) = a.until(WAIT, viewers_are(conv, &[ada.id, ben.id])).await?;
    let ServerFrame::Presence { viewers, .. } = f else { unreachable!() };
    assert!(viewers.iter().any(|v| v.name == "Ben"));

    // A second tab of Ada's does not add a viewer, and gets the current set at once.
    let mut a2 = env.connect(1, &ada).await?;
    subscribe(&mut a2, conv, None).await?;
    a2.until(WAIT, viewers_are(conv, &[ada.id, ben.id])).await?;

    // Ben leaves: Ada sees only herself.
    b.close().await;
    a.until(WAIT, viewers_are(conv, &[ada.id])).await?;
    Ok(())
}
