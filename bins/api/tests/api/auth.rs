use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn sign_up_login_me_and_refusals() {
    let app = spawn_app().await;
    let email = format!("ada-{}@acme.test", tag());
    let (s, accepted) = app
        .api
        .post("/orgs", json!({"org_name": "Acme", "name": "Ada Lovelace", "email": email.to_uppercase(), "password": "pw-ada-123456"}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 202, "{accepted}");
    assert!(accepted.get("token").is_none() && accepted.get("user").is_none(), "{accepted}");

    // Login is case-insensitive on the email and returns the user.
    let (s, v) =
        app.api.post("/auth/login", json!({"email": email.to_uppercase(), "password": "pw-ada-123456"})).await.unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(v["user"]["name"], "Ada Lovelace");
    assert_eq!(v["user"]["role"], "admin");
    assert_eq!(v["user"]["email"], email, "emails are stored lower-case");
    let token = v["token"].as_str().unwrap().to_owned();

    let (s, me) = app.api.with_token(&token).get("/me").await.unwrap();
    assert_eq!(s.as_u16(), 200);
    assert_eq!(me["email"], email);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["org_name"], "Acme");

    // Wrong password and unknown email: the same 401.
    let (s, v) = app.api.post("/auth/login", json!({"email": email, "password": "wrong-password"})).await.unwrap();
    assert_error(s, &v, 401, "unauthorized");
    let (s, v2) =
        app.api.post("/auth/login", json!({"email": "nobody@acme.test", "password": "wrong-password"})).await.unwrap();
    assert_error(s, &v2, 401, "unauthorized");
    assert_eq!(v["error"]["message"], v2["error"]["message"]);

    // No token, a forged token.
    let (s, v) = app.api.get("/me").await.unwrap();
    assert_error(s, &v, 401, "unauthorized");
    let (s, v) = app.api.with_token("not-a-token").get("/conversations").await.unwrap();
    assert_error(s, &v, 401, "unauthorized");

    // Email taken (any case): the same answer as a free one, and nothing created — the account keeps its org and
    // password; the new password does not sign in.
    let (s, v) = app
        .api
        .post("/orgs", json!({"org_name": "Other", "name": "Ada Again", "email": email.to_uppercase(), "password": "pw-other-12345"}))
        .await
        .unwrap();
    assert_eq!((s.as_u16(), &v), (202, &accepted), "a taken email is not revealed");
    let (s, v) = app.api.post("/auth/login", json!({"email": email, "password": "pw-other-12345"})).await.unwrap();
    assert_error(s, &v, 401, "unauthorized");
    let (_, me) = app.api.with_token(&token).get("/me").await.unwrap();
    assert_eq!((me["org_name"].as_str(), me["name"].as_str()), (Some("Acme"), Some("Ada Lovelace")));
    let pg = app.db.connect().await.unwrap();
    let orgs: i64 = pg.query_one("SELECT count(*) FROM orgs", &[]).await.unwrap().get(0);
    assert_eq!(orgs, 1, "no org for the refused sign-up");

    // Invalid fields → 400.
    for body in [
        json!({"org_name": "X", "name": "X", "email": "not-an-email", "password": "pw-123456789"}),
        json!({"org_name": "X", "name": "X", "email": "x@x.test", "password": "short"}),
        json!({"org_name": " ", "name": "X", "email": "x@x.test", "password": "pw-123456789"}),
        json!({"org_name": "X", "email": "x@x.test", "password": "pw-123456789"}),
    ] {
        let (s, v) = app.api.post("/orgs", body.clone()).await.unwrap();
        assert_error(s, &v, 400, "bad_request");
    }
    // Not JSON at all.
    let (client, base, _) = app.api.raw();
    let r = client.post(format!("{base}/auth/login")).body("email=x").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415);
}

#[tokio::test]
async fn only_an_admin_of_the_org_adds_members() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let body = json!({"name": "Dee Ramos", "email": format!("dee-{}@acme.test", tag()), "password": "pw-dee-123456"});

    // A member cannot add members; an admin of another org cannot either.
    let (s, v) =
        app.api.as_user(&team.ben).post(&format!("/orgs/{}/members", team.ada.org_id), body.clone()).await.unwrap();
    assert_error(s, &v, 403, "forbidden");
    let (s, v) = app.api.as_user(&gil).post(&format!("/orgs/{}/members", team.ada.org_id), body.clone()).await.unwrap();
    assert_error(s, &v, 403, "forbidden");

    // The admin can, with a role.
    let mut admin_body = body.clone();
    admin_body["role"] = json!("admin");
    let (s, v) =
        app.api.as_user(&team.ada).post(&format!("/orgs/{}/members", team.ada.org_id), admin_body).await.unwrap();
    assert_eq!(s.as_u16(), 201, "{v}");
    assert_eq!(v["role"], "admin");
    assert_eq!(v["org_id"], team.ada.org_id.to_string());
    let (s, v) = app.api.as_user(&team.ada).post(&format!("/orgs/{}/members", team.ada.org_id), body).await.unwrap();
    assert_error(s, &v, 409, "conflict");
    let mut bad_role = json!({"name": "Eve", "email": format!("eve-{}@acme.test", tag()), "password": "pw-eve-123456"});
    bad_role["role"] = json!("owner");
    let (s, v) =
        app.api.as_user(&team.ada).post(&format!("/orgs/{}/members", team.ada.org_id), bad_role).await.unwrap();
    assert_error(s, &v, 400, "bad_request");
}
