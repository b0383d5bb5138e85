//! The `bare` and `pushpin` baselines beside the edge, against the real stack: a private Pushpin (Debian's
//! package, installed by `scripts/test`, config from `loadtest/pushpin.conf.in`) and the `bare-fanout` binary, as
//! processes on free ports. Asserts that every viewer of every phase saw every response exactly once with the
//! right text, through each of them — never a time.

mod common;

use common::Crowd;
use loadtest::{Baseline, PhaseReport};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process that gets SIGTERM on drop (Pushpin's runner then stops the processes it started).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners: Vec<_> = (0..N).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    let mut ports = [0; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// `bare-fanout` on a free port; its `ws://` URL.
fn start_bare() -> anyhow::Result<(Proc, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bare-fanout")).stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line.trim().strip_prefix("listening bare-fanout http://").ok_or_else(|| anyhow::anyhow!("{line:?}"))?;
    Ok((proc, format!("ws://{addr}/ws")))
}

/// A private Pushpin routing to `origin`; (process, ws URL, publish URL).
async fn start_pushpin(dir: &Path, run_dir: &Path, origin: u16) -> anyhow::Result<(Proc, String, String)> {
    let [http, publish, push, sub, command] = free_ports::<5>()?;
    let template = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pushpin.conf.in"))?;
    let conf = template
        .replace("@DIR@", &dir.display().to_string())
        .replace("@RUN_DIR@", &run_dir.display().to_string())
        .replace("@HTTP_PORT@", &http.to_string())
        .replace("@PUBLISH_PORT@", &publish.to_string())
        .replace("@PUSH_PORT@", &push.to_string())
        .replace("@SUB_PORT@", &sub.to_string())
        .replace("@COMMAND_PORT@", &command.to_string())
        .replace("@SIG_KEY@", &uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(dir.join("log"))?;
    std::fs::create_dir_all(run_dir)?;
    std::fs::write(dir.join("routes"), format!("* 127.0.0.1:{origin},over_http\n"))?;
    std::fs::write(dir.join("pushpin.conf"), conf)?;
    let log = std::fs::File::create(dir.join("pushpin.log"))?;
    let child = Command::new("pushpin")
        .arg("--config")
        .arg(dir.join("pushpin.conf"))
        .arg("--merge-output")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting pushpin (scripts/test installs it): {e}"))?;
    let proc = Proc(child);
    let publish_url = format!("http://127.0.0.1:{publish}/publish/");
    let http_client = reqwest::Client::new();
    rh_testkit::eventually(Duration::from_secs(20), "pushpin answers", || {
        let (c, p) = (http_client.clone(), publish_url.clone());
        async move {
            c.post(&p).body(r#"{"items":[]}"#).send().await.ok()?;
            tokio::net::TcpStream::connect(("127.0.0.1", http)).await.ok().map(|_| ())
        }
    })
    .await?;
    Ok((proc, format!("ws://127.0.0.1:{http}/ws"), publish_url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_and_pushpin_baselines_deliver_every_response() -> anyhow::Result<()> {
    rh_testkit::init_crypto();
    let crowd = Crowd { conversations: 3, viewers: 40, viewer_users: 3, messages: 2, tokens: 40 };
    let (_stack, mut cfg) = crowd.on_stack().await?;
    let (_bare, bare_url) = start_bare()?;
    let [origin] = free_ports::<1>()?;
    let dir = rh_testkit::scratch_dir("pushpin");
    // IPC socket paths are limited to 107 bytes: the run directory is a short one.
    let run_dir = std::env::temp_dir().join(format!("rh-pushpin-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    let (_pushpin, pushpin_url, publish_url) = start_pushpin(&dir, &run_dir, origin).await?;

    cfg.baseline = vec![Baseline::Bare, Baseline::Pushpin];
    cfg.bare_url = bare_url;
    cfg.pushpin_url = pushpin_url;
    cfg.pushpin_publish_url = publish_url;
    cfg.pushpin_origin = format!("127.0.0.1:{origin}");
    let report = loadtest::run(cfg).await?;
    println!("{}", report.summary());
    let names: Vec<&str> = report.phases.iter().map(|p| p.transport).collect();
    assert_eq!(names, ["edge", "bare", "pushpin"]);
    for p in &report.phases {
        common::assert_clean(p, 3 + 120);
        assert!(p.deltas > 0, "{}: deltas streamed", p.transport);
        assert_eq!(p.responses_sent, 6);
    }
    // The baselines stream the same number of deltas (same prompt: same tokens, rate and coalescing).
    let per_viewer = |p: &PhaseReport| p.deltas / p.viewers_checked;
    assert_eq!(per_viewer(&report.phases[1]), per_viewer(&report.phases[2]));
    assert_eq!(report.comparisons.len(), 2);
    assert!(report.passed);
    let _ = std::fs::remove_dir_all(run_dir);
    Ok(())
}
