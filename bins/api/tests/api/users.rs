use crate::helpers::*;

#[tokio::test]
async fn the_directory_shows_only_my_org() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;

    let names = |v: &serde_json::Value| -> Vec<String> {
        v["users"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap().to_owned()).collect()
    };
    // Case-insensitive partial match on the name…
    let (s, v) = app.api.as_user(&team.ada).get("/users?q=OKAF").await.unwrap();
    assert_eq!(s.as_u16(), 200);
    assert_eq!(names(&v), ["Ben Okafor"]);
    assert_eq!(v["users"][0]["email"], team.ben.email);
    assert_eq!(v["users"][0]["id"], team.ben.user_id.to_string());
    // …or on the email.
    let (_, v) = app.api.as_user(&team.ben).get(&format!("/users?q={}", &team.cy.email[..6])).await.unwrap();
    assert_eq!(names(&v), ["Cy Tanaka"]);
    // No query: my org, me included, nobody from Globex.
    let (_, v) = app.api.as_user(&team.ada).get("/users").await.unwrap();
    assert_eq!(names(&v), ["Ada Lovelace", "Ben Okafor", "Cy Tanaka"]);
    // Another org's people never appear, by name or by email.
    let (_, v) = app.api.as_user(&team.ada).get("/users?q=gil").await.unwrap();
    assert!(names(&v).is_empty(), "{v}");
    let (_, v) = app.api.as_user(&gil).get("/users?q=a").await.unwrap();
    assert_eq!(names(&v), ["Gil Bates"]);
    // LIKE wildcards are literal.
    let (_, v) = app.api.as_user(&team.ada).get("/users?q=%25").await.unwrap();
    assert!(names(&v).is_empty(), "{v}");
    let (s, _) = app.api.get("/users?q=a").await.unwrap();
    assert_eq!(s.as_u16(), 401);
}
