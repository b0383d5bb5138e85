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

/// An upload of `size` bytes of text to `api` as `token`: status and body.
async fn upload_to(api: &rh_testkit::Api, token: &str, conv: uuid::Uuid, size: usize) -> (u16, Option<String>, Value) {
    let (client, base, _) = api.raw();
    let part = reqwest::multipart::Part::bytes(vec![b'x'; size]).file_name("notes.txt").mime_str("text/plain").unwrap();
    let r = client
        .post(format!("{base}/conversations/{conv}/attachments"))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_bytes_per_organization_are_counted_across_replicas_and_freed_by_deleting() {
    let limits = [("RH_LIMIT_ORG_ATTACHMENT_BYTES", "10000")];
    let app = spawn_app_with(&limits).await;
    let (replica, api_b) = spawn_replica(&app, &limits).await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let (ada, ben) = (team.ada.token.as_str(), team.ben.token.as_str());
    let first = shared_conversation(&app, &team, "Files").await;
    let second = shared_conversation(&app, &team, "More files").await;
    let globex = app.api.create_conversation(&gil, "Globex").await.unwrap();

    // Two uploads at once on two replicas that do not both fit: exactly one is stored.
    let (x, y) = tokio::join!(upload_to(&app.api, ada, first, 6000), upload_to(&api_b, ben, second, 6000));
    let mut statuses = [x.0, y.0];
    statuses.sort();
    assert_eq!(statuses, [201, 413], "{x:?} {y:?}");
    let (full_conv, other_conv) = if x.0 == 201 { (first, second) } else { (second, first) };
    // What is left (4000) still fits; a byte more does not, on either replica. No Retry-After: waiting does not help.
    assert_eq!(upload_to(&api_b, ben, other_conv, 3000).await.0, 201);
    for api in [&app.api, &api_b] {
        let (status, retry, body) = upload_to(api, ada, other_conv, 1001).await;
        assert_eq!((status, body["error"]["code"].as_str(), retry), (413, Some("quota_exceeded"), None), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("10000"), "{body}");
    }
    // Another organization has its own quota.
    assert_eq!(upload_to(&api_b, &gil.token, globex, 6000).await.0, 201);

    // A refused upload leaves nothing: no row, no event, no object.
    let pg = app.db.connect().await.unwrap();
    let rows: i64 = pg.query_one("SELECT count(*) FROM attachments", &[]).await.unwrap().get(0);
    assert_eq!(rows, 3);
    let added = |kinds: Vec<&str>| kinds.into_iter().filter(|k| *k == "attachment.added").count();
    assert_eq!(added(event_kinds(&app, first).await) + added(event_kinds(&app, second).await), 2);
    let store = app.js.get_object_store(rh_protocol::subjects::OBJECT_ATTACHMENTS).await.unwrap();
    let objects: Vec<_> = futures::TryStreamExt::try_collect(store.list().await.unwrap()).await.unwrap();
    assert_eq!(objects.iter().filter(|o| !o.deleted).count(), 3, "{objects:?}");
    let metrics =
        |url: String| async move { reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap() };
    for m in [metrics(app.process.http_url()).await, metrics(replica.http_url()).await] {
        assert!(m.contains("relayhub_api_limit_refusals_total{limit=\"org_attachment_bytes\"}"), "{m}");
    }

    // Deleting the conversation that holds 6000 bytes makes room at once.
    let (status, _) = app.api.as_user(&team.ada).delete(&format!("/conversations/{full_conv}")).await.unwrap();
    assert_eq!(status.as_u16(), 204);
    assert_eq!(upload_to(&app.api, ada, other_conv, 6000).await.0, 201);
}
