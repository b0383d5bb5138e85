//! Who is typing (issue 14): carried on presence across edges, cleared on send, on "stopped", on disconnect, on
//! a permission going down to View Only and by itself; View Only people never appear typing.

use crate::helpers::*;
use rh_protocol::{ClientFrame, ServerFrame};
use rh_testkit::{StackOptions, WsClient};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Reads until a `presence` frame of `conv` where `who`'s typing is `typing` (absent counts as not typing).
async fn until_typing(v: &mut Viewer, conv: Uuid, who: Uuid, typing: bool) -> anyhow::Result<Vec<Uuid>> {
    let f = v
        .until_frame(|f| match f {
            ServerFrame::Presence { conversation_id, viewers } if *conversation_id == conv => {
                viewers.iter().any(|p| p.user_id == who && p.typing) == typing
            }
            _ => false,
        })
        .await?;
    let ServerFrame::Presence { viewers, .. } = f else { unreachable!("a presence frame") };
    Ok(viewers.iter().filter(|p| p.typing).map(|p| p.user_id).collect())
}

fn typing(conversation_id: Uuid, typing: bool) -> ClientFrame {
    ClientFrame::Typing { conversation_id, typing }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_shows_across_edges_and_ends_on_send_stop_leave_and_time() -> anyhow::Result<()> {
    let t = team(StackOptions { edges: 2, ..Default::default() }).await?;
    let conv = t.api.create_conversation(&t.owner, "Who drives").await?;
    t.api.share(&t.owner, conv, &t.ben, "respond").await?;
    t.api.share(&t.owner, conv, &t.cy, "view").await?;
    let mut ada = Viewer::join(&t.stack.ws_url_of(0), &t.owner, conv, None).await?;
    let mut ben = Viewer::join(&t.stack.ws_url_of(1), &t.ben, conv, None).await?;
    let mut cy = Viewer::join(&t.stack.ws_url_of(0), &t.cy, conv, None).await?;
    for v in [&mut ada, &mut cy] {
        until_typing(v, conv, t.ben.user_id, false).await?;
    }

    // Ben (on the other edge) types: Ada and Cy see only him typing.
    ben.ws.send(&typing(conv, true)).await?;
    for v in [&mut ada, &mut cy] {
        assert_eq!(until_typing(v, conv, t.ben.user_id, true).await?, vec![t.ben.user_id]);
    }
    // Cy is View Only: refused, and never shown typing.
    cy.ws.send(&typing(conv, true)).await?;
    let f = cy.until_frame(|f| matches!(f, ServerFrame::Error { .. })).await?;
    assert!(matches!(&f, ServerFrame::Error { code, .. } if code == "forbidden"), "{f:?}");
    // Sending ends it.
    ben.ws
        .send(&ClientFrame::SendMessage {
            conversation_id: conv,
            text: "/sim tokens=3 rate=100\nhere goes".into(),
            client_msg_id: "m1".into(),
            edit_of: None,
        })
        .await?;
    assert_eq!(until_typing(&mut ada, conv, t.ben.user_id, false).await?, Vec::<Uuid>::new());

    // "Stopped" (blur, cleared draft) ends it.
    ben.ws.send(&typing(conv, true)).await?;
    until_typing(&mut ada, conv, t.ben.user_id, true).await?;
    ben.ws.send(&typing(conv, false)).await?;
    until_typing(&mut ada, conv, t.ben.user_id, false).await?;

    // Without a repeat it ends by itself, a little after the ttl.
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the throttle
    ben.ws.send(&typing(conv, true)).await?;
    until_typing(&mut ada, conv, t.ben.user_id, true).await?;
    let since = Instant::now();
    until_typing(&mut ada, conv, t.ben.user_id, false).await?;
    let ttl = Duration::from_millis(rh_protocol::frame::TYPING_TTL_MS);
    assert!(since.elapsed() >= ttl - Duration::from_millis(500), "ended after {:?}", since.elapsed());

    // Down to View Only while typing: it ends, and typing is refused from then on.
    ben.ws.send(&typing(conv, true)).await?;
    until_typing(&mut ada, conv, t.ben.user_id, true).await?;
    let (s, body) = t
        .api
        .as_user(&t.owner)
        .patch(&format!("/conversations/{conv}/shares/{}", t.ben.user_id), json!({"permission": "view"}))
        .await?;
    anyhow::ensure!(s.is_success(), "{s} {body}");
    until_typing(&mut ada, conv, t.ben.user_id, false).await?;
    ben.until_frame(|f| matches!(f, ServerFrame::PermissionChanged { .. })).await?;
    ben.ws.send(&typing(conv, true)).await?;
    let f = ben.until_frame(|f| matches!(f, ServerFrame::Error { .. })).await?;
    assert!(matches!(&f, ServerFrame::Error { code, .. } if code == "forbidden"), "{f:?}");

    // Leaving ends it: Ada (owner) types, then her socket closes; Ben, back to Can Respond, sees her go.
    let (s, _) = t
        .api
        .as_user(&t.owner)
        .patch(&format!("/conversations/{conv}/shares/{}", t.ben.user_id), json!({"permission": "respond"}))
        .await?;
    anyhow::ensure!(s.is_success());
    ada.ws.send(&typing(conv, true)).await?;
    until_typing(&mut ben, conv, t.owner.user_id, true).await?;
    drop(ada);
    let f = ben
        .until_frame(|f| matches!(f, ServerFrame::Presence { viewers, .. } if viewers.iter().all(|p| p.user_id != t.owner.user_id)))
        .await?;
    assert!(matches!(f, ServerFrame::Presence { viewers, .. } if viewers.iter().all(|p| !p.typing)));

    // A conversation the socket does not follow: not_found.
    let other = t.api.create_conversation(&t.ben, "Elsewhere").await?;
    ben.ws.send(&typing(other, true)).await?;
    let f = ben.until_frame(|f| matches!(f, ServerFrame::Error { .. })).await?;
    assert!(matches!(&f, ServerFrame::Error { code, .. } if code == "not_found"), "{f:?}");
    Ok(())
}

/// Reads `ws` until a `presence` of `conv` shows `who` typing (`typing`); an `error` on the way fails.
async fn until_shown_typing(
    ws: &mut WsClient,
    conv: Uuid,
    who: Uuid,
    typing: bool,
) -> anyhow::Result<Vec<ServerFrame>> {
    let shown = |f: &ServerFrame| match f {
        ServerFrame::Presence { conversation_id, viewers } if *conversation_id == conv => {
            viewers.iter().any(|p| p.user_id == who && p.typing) == typing
        }
        _ => false,
    };
    let (f, before) = ws.until(WAIT, |f| shown(f) || matches!(f, ServerFrame::Error { .. })).await?;
    anyhow::ensure!(shown(&f), "refused: {f:?}");
    Ok(before)
}

/// `typing` sent right behind `subscribe`, before the edge has the access answer: the web client does this when
/// someone types at once in a conversation they just opened, or opened again from a search result. It waits for
/// the answer and then shows; a `not_found` for it would read as the subscribe's refusal (the client closed the
/// conversation as "not found").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_right_behind_subscribe_waits_for_the_access_answer() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "Straight in").await?;
    t.api.share(&t.owner, conv, &t.ben, "respond").await?;
    let mut ada = Viewer::join(&t.stack.ws_url(), &t.owner, conv, None).await?;
    let ben_id = t.ben.user_id;

    // Opened: subscribe (the edge asks the api) and typing in one go.
    let mut ben = WsClient::connect(&t.stack.ws_url(), &t.ben.token).await?;
    ben.subscribe_compact(conv, None).await?;
    ben.send(&typing(conv, true)).await?;
    let before = until_shown_typing(&mut ben, conv, ben_id, true).await?;
    anyhow::ensure!(before.iter().any(|f| matches!(f, ServerFrame::Subscribed { .. })), "{before:?}");
    until_typing(&mut ada, conv, ben_id, true).await?;
    ben.send(&typing(conv, false)).await?;
    until_shown_typing(&mut ben, conv, ben_id, false).await?;
    until_typing(&mut ada, conv, ben_id, false).await?;

    // Opened again on the same socket, with the history's grant (the edge checks it itself): the same.
    let history = t.api.conversation(&t.ben, conv).await?;
    let grant = history["grant"].as_str().map(str::to_owned);
    anyhow::ensure!(grant.is_some(), "no grant in {history}");
    ben.send(&ClientFrame::Unsubscribe { conversation_id: conv }).await?;
    let after_seq = history["seq"].as_u64();
    ben.send(&ClientFrame::Subscribe { conversation_id: conv, after_seq, compact: true, grant }).await?;
    ben.send(&typing(conv, true)).await?;
    until_shown_typing(&mut ben, conv, ben_id, true).await?;
    until_typing(&mut ada, conv, ben_id, true).await?;
    Ok(())
}
