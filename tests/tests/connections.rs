//! No client can hold an HTTP listener hostage: a portal (as a process,
//! over HTTPS) cuts off clients that trickle their headers or say nothing,
//! on its API and on its operations listener, and keeps serving everyone
//! else meanwhile.

use std::time::{Duration, Instant};

use freeport_tests::Hub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HEADER_TIMEOUT_SECS: u64 = 2;
const IDLE_TIMEOUT_SECS: u64 = 3;

/// How long a trickling client keeps going before the test gives up on
/// being cut off: far beyond the configured timeouts.
const PATIENCE: Duration = Duration::from_secs(40);

/// Sends a request line, then one header line a second, for as long as the
/// server listens; returns how long the server let it go on.
async fn trickle<S>(mut stream: S) -> Duration
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = Instant::now();
    if stream
        .write_all(b"GET /v1/me HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .is_err()
    {
        return started.elapsed();
    }
    let mut buf = [0u8; 256];
    while started.elapsed() < PATIENCE {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                // Closed (hyper may say 408 first; it never answers the request).
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(n) => assert!(
                    !String::from_utf8_lossy(&buf[..n]).contains("200 OK"),
                    "a request with unfinished headers was answered"
                ),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if stream.write_all(b"x-trickle: 1\r\n").await.is_err() {
                    return started.elapsed();
                }
            }
        }
    }
    panic!("still connected after trickling headers for {PATIENCE:?}");
}

/// Waits, sending nothing, until the server closes; how long that took.
async fn silent(mut stream: tokio::net::TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
        Ok(_) => started.elapsed(),
        Err(_) => panic!("a silent connection was kept for {PATIENCE:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_and_silent_clients_are_cut_off_while_others_are_served() {
    let limits = format!(
        "{{ header_read_timeout_secs = {HEADER_TIMEOUT_SECS}, idle_timeout_secs = {IDLE_TIMEOUT_SECS}, max_connections = 64 }}"
    );
    let hub = Hub::start_configured(
        &[],
        &format!("connections = {limits}\nops_connections = {limits}\n"),
        "",
    )
    .await;
    let portal = hub.url.trim_start_matches("https://").to_string();
    let ops = format!("localhost:{}", hub.ops_ports["portal"]);

    // 40 trickling clients over TLS, 20 that connect and say nothing, on
    // the API and on the operations listener.
    let mut trickling = vec![];
    let mut silence = vec![];
    for i in 0..40 {
        let authority = if i % 4 == 0 { &ops } else { &portal };
        let stream = hub.tls_to(authority).await.expect("TLS handshake");
        trickling.push(tokio::spawn(trickle(stream)));
    }
    for i in 0..20 {
        let authority = if i % 4 == 0 { &ops } else { &portal };
        let tcp = tokio::net::TcpStream::connect(authority.replace("localhost", "127.0.0.1"))
            .await
            .expect("connect");
        silence.push(tokio::spawn(silent(tcp)));
    }

    // Meanwhile every ordinary request is answered.
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(HEADER_TIMEOUT_SECS + 2) {
        let (status, me) = hub.call("GET", "/v1/me", &hub.admin_key, None).await;
        assert_eq!(status, 200, "{me}");
        let livez = hub.ops_get("portal", "/livez", false).await;
        assert_eq!(livez.status(), 200);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answered > 0);

    for client in trickling {
        let lasted = client.await.expect("trickler");
        assert!(lasted < PATIENCE, "trickled for {lasted:?}");
    }
    for client in silence {
        let lasted = client.await.expect("silent client");
        assert!(lasted < PATIENCE, "silent for {lasted:?}");
    }
    // A kept-alive connection that goes quiet is closed too, after answering.
    let mut kept = hub.tls_to(&portal).await.expect("TLS handshake");
    kept.write_all(
        format!(
            "GET /v1/me HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\r\n",
            hub.admin_key
        )
        .as_bytes(),
    )
    .await
    .expect("send");
    let mut answer = vec![0u8; 4096];
    let n = kept.read(&mut answer).await.expect("answer");
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let idle = tokio::time::timeout(PATIENCE, kept.read(&mut answer)).await;
    assert!(
        matches!(idle, Ok(Ok(0) | Err(_))),
        "an idle kept-alive connection was not closed"
    );
}
