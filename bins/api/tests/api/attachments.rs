use crate::helpers::*;
use rh_protocol::Event;
use serde_json::Value;

async fn upload(app: &App, token: &str, conv: uuid::Uuid, name: &str, mime: &str, bytes: Vec<u8>) -> (u16, Value) {
    try_upload(app, token, conv, name, mime, bytes).await.expect("the upload request completes")
}

/// `None` when the connection broke while sending (a server may answer 413 and close before reading it all).
async fn try_upload(
    app: &App,
    token: &str,
    conv: uuid::Uuid,
    name: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> Option<(u16, Value)> {
    let (client, base, _) = app.api.raw();
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()).mime_str(mime).unwrap();
    let r = client
        .post(format!("{base}/conversations/{conv}/attachments"))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().text("note", "ignored").part("file", part))
        .send()
        .await
        .ok()?;
    Some((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn upload_download_and_limits() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let conv = shared_conversation(&app, &team, "Files").await;
    let dee =
        app.api.add_member(&team.ada, "Dee Ramos", &format!("dee-{}@acme.test", tag()), "pw-dee-123456").await.unwrap();
    let content: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();

    // Ben (Can Respond) attaches a PNG.
    let (s, v) = upload(&app, &team.ben.token, conv, "../diagram.png", "image/png", content.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["filename"], "diagram.png");
    assert_eq!(v["content_type"], "image/png");
    assert_eq!(v["size"], content.len());
    assert_eq!(v["uploaded_by"], team.ben.user_id.to_string());
    let id = v["id"].as_str().unwrap().to_owned();

    // Every participant sees it: in the conversation and as an event.
    let got = app.api.conversation(&team.cy, conv).await.unwrap();
    assert_eq!(got["attachments"][0]["id"], id.as_str());
    let events = conv_events(&app, conv).await;
    assert!(events.iter().any(|(_, e)| matches!(&e.event,
        Event::AttachmentAdded { attachment_id, filename, size, uploaded_by, .. }
            if attachment_id.to_string() == id && filename == "diagram.png" && *size == content.len() as u64 && *uploaded_by == team.ben.user_id)));

    // Cy (View Only) downloads the same bytes, as an attachment.
    let (client, base, _) = app.api.raw();
    let url = format!("{base}/conversations/{conv}/attachments/{id}");
    let r = client.get(&url).bearer_auth(&team.cy.token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let disposition = r.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment;") && disposition.contains("diagram.png"), "{disposition}");
    assert_eq!(r.bytes().await.unwrap().to_vec(), content);

    // Non-participants (a teammate, another org), and another conversation's id, get 404; no token 401.
    for who in [&dee.token, &gil.token] {
        let r = client.get(&url).bearer_auth(who).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }
    let other = app.api.create_conversation(&team.ben, "Other").await.unwrap();
    let r = client
        .get(format!("{base}/conversations/{other}/attachments/{id}"))
        .bearer_auth(&team.ben.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(client.get(&url).send().await.unwrap().status().as_u16(), 401);

    // Too large → 413; a type we do not take → 415; View Only → 403.
    let (s, v) = upload(&app, &team.ben.token, conv, "big.txt", "text/plain", vec![b'x'; MAX_ATTACHMENT + 1]).await;
    assert_eq!((s, v["error"]["code"].as_str()), (413, Some("payload_too_large")), "{v}");
    // Far beyond the limit the server stops reading: 413, or the connection closes mid-send.
    if let Some((s, v)) =
        try_upload(&app, &team.ben.token, conv, "big.txt", "text/plain", vec![b'x'; MAX_ATTACHMENT * 4]).await
    {
        assert_eq!(s, 413, "{v}");
    }
    let (s, v) = upload(&app, &team.ben.token, conv, "run.exe", "application/x-msdownload", b"MZ".to_vec()).await;
    assert_eq!((s, v["error"]["code"].as_str()), (415, Some("unsupported_media_type")), "{v}");
    let (s, _) = upload(&app, &team.cy.token, conv, "notes.txt", "text/plain", b"hi".to_vec()).await;
    assert_eq!(s, 403);
    // Exactly at the limit is fine; text with a charset too.
    let (s, v) =
        upload(&app, &team.ada.token, conv, "ok.txt", "text/plain; charset=utf-8", vec![b'y'; MAX_ATTACHMENT]).await;
    assert_eq!(s, 201, "owner uploads at the limit: {v}");
    assert_eq!(v["content_type"], "text/plain");
    // No `file` field.
    let r = client
        .post(format!("{base}/conversations/{conv}/attachments"))
        .bearer_auth(&team.ben.token)
        .multipart(reqwest::multipart::Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(app.api.conversation(&team.ben, conv).await.unwrap()["attachments"].as_array().unwrap().len(), 2);
}
