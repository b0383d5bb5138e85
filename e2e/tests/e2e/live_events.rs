//! Every row of the product page's "what each participant sees in real time" table reaches every participant at
//! once: a message sent, tokens streaming, a model change (with who changed it), a file attached — and presence.

use crate::helpers::*;
use rh_protocol::{Event, ServerFrame};
use rh_testkit::StackOptions;
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_changes_attachments_and_messages_reach_every_participant() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "Launch").await?;
    t.api.share(&t.owner, conv, &t.ben, "respond").await?;
    t.api.share(&t.owner, conv, &t.cy, "view").await?;
    let ws = t.stack.ws_url();
    let mut viewers = vec![
        Viewer::join(&ws, &t.owner, conv, None).await?,
        Viewer::join(&ws, &t.ben, conv, None).await?,
        Viewer::join(&ws, &t.cy, conv, None).await?,
    ];

    // Presence: everyone watching is listed, on every socket.
    let want: BTreeSet<_> = [t.owner.user_id, t.ben.user_id, t.cy.user_id].into_iter().collect();
    for v in viewers.iter_mut() {
        v.ws.until(WAIT, |f| match f {
            ServerFrame::Presence { viewers, .. } => viewers.iter().map(|p| p.user_id).collect::<BTreeSet<_>>() == want,
            _ => false,
        })
        .await?;
    }

    // Ben (Can Respond) switches the model: every header learns the new model and who changed it.
    let (s, body) =
        t.api.as_user(&t.ben).patch(&format!("/conversations/{conv}/settings"), json!({"model": "sim-2"})).await?;
    assert!(s.is_success(), "{s} {body}");
    for v in viewers.iter_mut() {
        let seen = v.until_event(|s| matches!(s.event.event, Event::SettingsChanged { .. })).await?;
        let Event::SettingsChanged { changed_by, changed, settings, .. } = &seen.event.event else { unreachable!() };
        assert_eq!(*changed_by, t.ben.user_id);
        assert_eq!(changed, &vec!["model".to_string()]);
        assert_eq!(settings.model, "sim-2");
    }
    let v = t.api.conversation(&t.cy, conv).await?;
    assert_eq!(v["model"], "sim-2", "the header after a reload: {v}");

    // Ben attaches a file: it appears for everyone.
    let (http, base, _) = t.api.raw();
    let form = "--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"brief.md\"\r\nContent-Type: text/markdown\r\n\r\n# Brief\r\n--b0--\r\n";
    let resp = http
        .post(format!("{base}/conversations/{conv}/attachments"))
        .bearer_auth(&t.ben.token)
        .header("content-type", "multipart/form-data; boundary=b0")
        .body(form)
        .send()
        .await?;
    assert!(resp.status().is_success(), "upload: {}", resp.status());
    for v in viewers.iter_mut() {
        let seen = v.until_event(|s| matches!(s.event.event, Event::AttachmentAdded { .. })).await?;
        let Event::AttachmentAdded { filename, uploaded_by, size, .. } = &seen.event.event else { unreachable!() };
        assert_eq!(filename, "brief.md");
        assert_eq!(*uploaded_by, t.ben.user_id);
        assert_eq!(*size, 7);
    }

    // Ben sends a message: everyone sees it, then the answer streams to everyone, with the new model.
    let rid = response_id(&t.api.send_message(&t.ben, conv, "/sim tokens=20 rate=100\nWhat next?").await?)?;
    let mut texts = Vec::new();
    for v in viewers.iter_mut() {
        let seen = v.until_event(|s| matches!(s.event.event, Event::MessageCreated { .. })).await?;
        let Event::MessageCreated { author_id, text, .. } = &seen.event.event else { unreachable!() };
        assert_eq!(*author_id, t.ben.user_id);
        assert!(text.ends_with("What next?"));
        v.until_response_end(rid).await?;
        texts.push(check_response(&v.seen, rid)?);
        let started = v.seen.iter().find_map(|s| match &s.event.event {
            Event::ResponseStarted { model, response_id, .. } if *response_id == rid => Some(model.clone()),
            _ => None,
        });
        assert_eq!(started.as_deref(), Some("sim-2"));
    }
    assert!(texts.windows(2).all(|w| w[0] == w[1]), "everyone saw the same answer");

    // Cy leaves: the others' presence drops her.
    let cy = viewers.pop().expect("three viewers");
    cy.ws.close().await;
    let want: BTreeSet<_> = [t.owner.user_id, t.ben.user_id].into_iter().collect();
    viewers[0]
        .ws
        .until(WAIT, |f| match f {
            ServerFrame::Presence { viewers, .. } => viewers.iter().map(|p| p.user_id).collect::<BTreeSet<_>>() == want,
            _ => false,
        })
        .await?;
    Ok(())
}
