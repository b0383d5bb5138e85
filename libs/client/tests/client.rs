//! The client when nothing answers. (Against the real api, the client is tested in the api's suite:
//! `bins/api/tests/api/client.rs`; every api and e2e test uses it through `rh-testkit`.)

use rh_client::{Client, ErrorKind};
use tokio::net::TcpListener;

#[tokio::test]
async fn no_server_is_a_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(&format!("http://{addr}")).expect("client");
    let e = client.login("ada@acme.test", "pw").await.expect_err("refused");
    assert_eq!(e.kind(), &ErrorKind::Transport);
    assert!(e.to_string().starts_with("login: no answer"), "{e}");
}
