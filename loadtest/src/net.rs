//! Opening many client sockets from one machine.
//!
//! A TCP connection is identified by (source ip, source port, destination ip, destination port). Against one
//! edge listener a single source address runs out after its ~28k ephemeral ports, so when the target is on the
//! loopback network every socket is bound first to one of `127.1.0.1`, `127.1.0.2`, ... (all of `127.0.0.0/8` is
//! local on Linux), in rotation. The file-descriptor limit is raised to the hard limit for the same reason.

use anyhow::{Context, anyhow, bail};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client WebSocket over plain TCP.
pub type Ws = WebSocketStream<TcpStream>;

/// Where sockets go and which source addresses they use.
pub struct Net {
    source_ips: usize,
    next: AtomicUsize,
    read_buffer: usize,
    connect_timeout: Duration,
}

/// A WebSocket URL resolved once (not one DNS lookup per socket).
#[derive(Clone, Debug)]
pub struct Target {
    /// The URL as given (used for the HTTP upgrade request).
    pub url: String,
    pub addr: SocketAddr,
}

impl Target {
    /// Resolves `ws://host:port/path`, preferring IPv4 (so `localhost` can use the source-address spread).
    pub async fn resolve(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow!("{url:?}: only ws:// URLs are supported (the load tool speaks plain TCP)"))?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let hostport = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(hostport.as_str())
            .await
            .with_context(|| format!("resolving {hostport}"))?
            .collect();
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| anyhow!("{hostport} resolves to nothing"))?;
        Ok(Target { url: url.to_owned(), addr })
    }

    /// The upgrade request: `url` with `Authorization: Bearer <token>` (never the token in the URL).
    /// The upgrade request; `sidebar: false` adds `sidebar=off` (the edge then sends no sidebar frames).
    pub fn request(
        &self,
        token: &str,
        sidebar: bool,
    ) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = match (sidebar, self.url.contains('?')) {
            (true, _) => self.url.clone(),
            (false, false) => format!("{}?sidebar=off", self.url),
            (false, true) => format!("{}&sidebar=off", self.url),
        };
        let mut req = url.as_str().into_client_request().context("websocket url")?;
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().context("token")?,
        );
        Ok(req)
    }
}

impl Net {
    pub fn new(source_ips: usize, read_buffer: usize) -> Self {
        Net {
            source_ips: source_ips.max(1),
            next: AtomicUsize::new(0),
            read_buffer,
            connect_timeout: Duration::from_secs(30),
        }
    }

    /// The `k`-th source address of the rotation: `127.1.0.1`, `127.1.0.2`, ..., `127.1.1.0`, ...
    pub fn source_ip(k: usize) -> Ipv4Addr {
        let n = (k as u32 % (1 << 16)) + 1;
        Ipv4Addr::new(127, 1, (n >> 8) as u8, (n & 0xff) as u8)
    }

    fn config(&self) -> WebSocketConfig {
        WebSocketConfig::default().read_buffer_size(self.read_buffer).write_buffer_size(0)
    }

    /// A TCP connection to `addr`, bound to the next loopback source address when `addr` is loopback.
    pub async fn tcp(&self, addr: SocketAddr) -> anyhow::Result<TcpStream> {
        let stream = match addr.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => {
                let k = self.next.fetch_add(1, Ordering::Relaxed) % self.source_ips;
                let socket = TcpSocket::new_v4().context("socket")?;
                socket
                    .bind(SocketAddr::new(IpAddr::V4(Self::source_ip(k)), 0))
                    .context("binding a loopback source address")?;
                socket.connect(addr).await.with_context(|| format!("connecting to {addr}"))?
            }
            IpAddr::V4(_) => {
                TcpSocket::new_v4()?.connect(addr).await.with_context(|| format!("connecting to {addr}"))?
            }
            IpAddr::V6(_) => {
                TcpSocket::new_v6()?.connect(addr).await.with_context(|| format!("connecting to {addr}"))?
            }
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// TCP connect + WebSocket handshake to `url` (which names `target`); returns the socket and the time taken.
    pub async fn websocket(&self, target: &Target, token: &str, sidebar: bool) -> anyhow::Result<(Ws, Duration)> {
        let started = Instant::now();
        let fut = async {
            let req = target.request(token, sidebar)?;
            let tcp = self.tcp(target.addr).await?;
            let (ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(self.config()))
                .await
                .context("websocket handshake")?;
            anyhow::Ok(ws)
        };
        match tokio::time::timeout(self.connect_timeout, fut).await {
            Ok(Ok(ws)) => Ok((ws, started.elapsed())),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("connect timed out after {:?}", self.connect_timeout),
        }
    }
}

/// Raises the soft limit of open files to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

/// Resident memory (VmRSS) of a process, in KiB, from `/proc/<pid>/status`.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Sum of VmRSS over `pids` (KiB); `None` when no pid is given or one cannot be read.
pub fn total_rss_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| vm_rss_kib(p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_rotate_inside_loopback() {
        assert_eq!(Net::source_ip(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(Net::source_ip(255), Ipv4Addr::new(127, 1, 1, 0));
        assert!(Net::source_ip(60_000).is_loopback());
    }

    #[test]
    fn own_rss_is_readable() {
        assert!(vm_rss_kib(std::process::id()).unwrap_or(0) > 0);
        assert_eq!(total_rss_kib(&[]), None);
    }

    #[tokio::test]
    async fn urls_resolve_and_take_a_token() {
        let t = Target::resolve("ws://127.0.0.1:8081/ws").await.unwrap();
        assert_eq!(t.addr, "127.0.0.1:8081".parse().unwrap());
        let req = t.request("abc", true).unwrap();
        assert_eq!(req.uri().to_string(), "ws://127.0.0.1:8081/ws");
        assert_eq!(req.headers()["authorization"], "Bearer abc");
        assert!(Target::resolve("wss://x/ws").await.is_err());
    }

    #[tokio::test]
    async fn binds_a_spread_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let net = Net::new(4, 4096);
        let a = net.tcp(addr).await.unwrap();
        let b = net.tcp(addr).await.unwrap();
        assert_eq!(a.local_addr().unwrap().ip(), IpAddr::V4(Net::source_ip(0)));
        assert_eq!(b.local_addr().unwrap().ip(), IpAddr::V4(Net::source_ip(1)));
    }
}
